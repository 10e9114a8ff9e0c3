//! Published vectors (inbound.md §9) and helpers shared by the adapter's integration tests.

// Each test file uses a different subset of these.
#![allow(dead_code)]

use botgate_wechat::WechatAccount;
use botgate_wxcrypt::{signature, EncodingAesKey, WxCrypt};

/// TV-1/TV-2 (message-push doc) and TV-4 (third-party platform doc) share token and key.
pub const DOC_TOKEN: &str = "AAAAA";
pub const DOC_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
pub const TV4_APP_ID: &str = "wx134c8103faa5a59e";

pub const TV1_QUERY: &str = "signature=f464b24fc39322e44b38aa78f5edd27bd1441696&echostr=4375120948345356249&timestamp=1714036504&nonce=1514711492";
/// TV-1's `timestamp`: "now" for a request received the moment it was signed.
pub const TV1_NOW: u64 = 1714036504;

pub const TV2_SIGNATURE: &str = "899cf89e464efb63f54ddac96b0a0a235f53aa78";
pub const TV2_TIMESTAMP: &str = "1714037059";
pub const TV2_NONCE: &str = "486452656";

pub const TV4_QUERY: &str = "signature=cc0c594499c1634947d5b502f158ee518947db27&timestamp=1715943329&nonce=1590219412&openid=o9AgO5Kd5ggOC-bXrbNODIiE3bGY&encrypt_type=aes&msg_signature=6c12a4205838198b8fa631b3220723bb07f1015c";
/// TV-4's `timestamp`.
pub const TV4_NOW: u64 = 1715943329;
pub const TV4_ENCRYPT: &str = "D7yzvUNAL930rd28wf21s4hvXhz0L6Uit/p2Di6C5DHyYGpEgdBRnKjBec34JwoQXicwaZC7fOVihW80F4VtsdvE//1vr7oAbqjDv8KenVp+ajKYpJnyQ4zMRhIC+a31fCVOMC03FfzV/QuC94kBP55a+Za3sJgvAn+ZbsNqZI5DkyuzkhQN8OBqCzFhizGmy0xpM0MEA4agpvE+RuNO1rhHTtuJB5yltw1FiYzecSXJ+y/D2r81VkRn2eYjh2ltsoyfbDR7Is6ookXIFxTfyeNyeHxMeT4KN5WpCDmSbTcUYrbBUlkGLJ9n/rU8YOywma6G7aTb7KZKOqCxgfoUlYEZPk4FUL/TK7ShriFDMVCLyjQJ15Ob++agDWtcxhfUfe6HIoIpRW8mKNBQiY/Jd1svvuskA1wLef1RTtzKfMpagSCX/laZINmdnX4zrF6kIaR9P4xQrWXbsTFHTYe0Mg==";

/// TV-5 and TV-6: Tencent's own OA samples (2014).
pub const SAMPLE_TOKEN: &str = "spamtest";
pub const SAMPLE_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
pub const SAMPLE_APP_ID: &str = "wx2c2769f8efd9abc2";

pub const TV5_TIMESTAMP: &str = "1409735669";
pub const TV5_NONCE: &str = "1320562132";
pub const TV5_MSG_SIGNATURE: &str = "5d197aaffba7e9b25a30732f161a50dee96bd5fa";
pub const TV5_BODY: &str = "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName><CreateTime>1409735668</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[abcdteT]]></Content><MsgId>6054768590064713728</MsgId><Encrypt><![CDATA[hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=]]></Encrypt></xml>";

pub const TV6_TIMESTAMP: &str = "1410349438";
pub const TV6_NONCE: &str = "298025754";
pub const TV6_MSG_SIGNATURE: &str = "003fee52ecc56afb46c00b5c7721be87860ce785";
pub const TV6_ENCRYPT: &str = "mfBCs65c67CeJw22u4VT2TD73q5H06+ocrAIxswCaeZ/d/Lw0msSZFHY0teqgSYiI1zR2gD2DKrB3TIrmX/liNSDrGqS8jSI/WPeKB5VPr7Ezr7gomZAyGCwJSgT1TRFWPfONGJMxuj2nk4faTuspAuVIFQ6SHwZuJBZC7mcJp7Cgr9cUhATQWDbOPaE7ukZBTV2YqyzH+UI2AK+J1S47cE79k1RX8t0hcTz/O0hlK8DGXKnvYv88qKQcI7z4iaajqHfRVZKBNyOODabs+It+ZfM3dWTeFcPgDbGtIEnpt/EDtuuA/zMvtkaKdHdswPnVZQ+xdwbYr3ldGvfT8HlEYEgkgKaThxTFobVlwzu2ZkXCjicbP3xdr15Iq48ObgzPpqYuZ3IEoyggZDKClquk0u0orMck4GTF/XyE8yGzc4=";

/// A vector's `timestamp` as the receiver's clock: the request arrives the moment it was signed.
pub fn at(timestamp: &str) -> u64 {
    timestamp.parse().expect("a vector's timestamp is a number")
}

pub fn key(encoding_aes_key: &str) -> EncodingAesKey {
    EncodingAesKey::parse(encoding_aes_key).expect("valid EncodingAESKey")
}

/// The account of the message-push doc examples, plaintext only (TV-1, TV-2).
pub fn doc_plain_account() -> WechatAccount {
    WechatAccount::new(DOC_TOKEN, None, "wxba5fad812f8e6fb9")
}

/// The third-party-platform doc account (TV-4).
pub fn tv4_account() -> WechatAccount {
    WechatAccount::new(DOC_TOKEN, Some(key(DOC_KEY)), TV4_APP_ID)
}

/// Tencent's sample account (TV-5, TV-6).
pub fn sample_account() -> WechatAccount {
    WechatAccount::new(SAMPLE_TOKEN, Some(key(SAMPLE_KEY)), SAMPLE_APP_ID)
}

pub fn sample_crypt() -> WxCrypt {
    WxCrypt::new(SAMPLE_TOKEN, key(SAMPLE_KEY), SAMPLE_APP_ID)
}

/// The TV-4 body exactly as printed in the doc: indented, CDATA everywhere.
pub fn tv4_body() -> String {
    format!(
        "<xml>\n    <ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName>\n    <Encrypt><![CDATA[{TV4_ENCRYPT}]]></Encrypt>\n</xml>"
    )
}

/// A safe-mode body: the account id and the ciphertext only.
pub fn safe_body(to_user: &str, encrypt: &str) -> String {
    format!("<xml><ToUserName><![CDATA[{to_user}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")
}

/// The query WeChat sends with an encrypted POST, both signatures computed with `token`.
pub fn aes_query(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    let plain = signature(&[token, timestamp, nonce]);
    let msg_signature = signature(&[token, timestamp, nonce, encrypt]);
    format!("signature={plain}&timestamp={timestamp}&nonce={nonce}&openid=oUser&encrypt_type=aes&msg_signature={msg_signature}")
}

/// The query of a plaintext POST.
pub fn plain_query(token: &str, timestamp: &str, nonce: &str) -> String {
    let plain = signature(&[token, timestamp, nonce]);
    format!("signature={plain}&timestamp={timestamp}&nonce={nonce}&openid=oUser")
}

/// A text message as WeChat sends it (CDATA strings, bare numbers).
pub fn text_message(from_user: &str, to_user: &str, content: &str, msg_id: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{to_user}]]></ToUserName>\n<FromUserName><![CDATA[{from_user}]]></FromUserName>\n<CreateTime>1700000000</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[{content}]]></Content>\n<MsgId>{msg_id}</MsgId>\n</xml>"
    )
}

/// The text of element `name` in a flat XML document (tests read reply envelopes with this).
pub fn element(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open).expect("element present") + open.len();
    let end = start + xml[start..].find(&close).expect("element closed");
    let text = &xml[start..end];
    text.strip_prefix("<![CDATA[")
        .and_then(|text| text.strip_suffix("]]>"))
        .unwrap_or(text)
        .to_owned()
}

/// Replaces the first occurrence of `from`, insisting there is one (so a tamper always tampers).
pub fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in {text:?}");
    text.replacen(from, to, 1)
}
