//! Published WeCom vectors (inbound.md §9) and helpers shared by the adapter's integration tests.

// Each test file uses a different subset of these.
#![allow(dead_code)]

use botgate_wecom::WecomApp;
use botgate_wxcrypt::EncodingAesKey;

/// TV-8 / TV-9 / G2: WeCom doc 90968 and Tencent's samples.
pub const DOC_TOKEN: &str = "QDG6eK";
pub const DOC_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
pub const DOC_CORP_ID: &str = "wx5823bf96d3bd56c7";

/// TV-8 exactly as the doc prints the GET (echostr URL-encoded).
pub const TV8_QUERY: &str = "msg_signature=5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3&timestamp=1409659589&nonce=263014780&echostr=P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D";
pub const TV8_NOW: u64 = 1409659589;
pub const TV8_ECHO: &str = "1616140317555161061";

pub const TV9_QUERY: &str =
    "msg_signature=477715d11cdb4164915debcba66cb864d751f3e6&timestamp=1409659813&nonce=1372623149";
pub const TV9_NOW: u64 = 1409659813;
pub const TV9_ENCRYPT: &str = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==";
/// TV-9's frame random, recovered by decrypting: with it the simulator must reproduce TV-9.
pub const TV9_RANDOM: &[u8; 16] = b"0960688932c47ef1";

/// The TV-9 body as Tencent's Sample.py prints it: a space after `<xml>`, line breaks, and the
/// AgentID wrapped in CDATA.
pub fn tv9_body() -> String {
    format!("<xml> <ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[{TV9_ENCRYPT}]]></Encrypt>\n   <AgentID><![CDATA[218]]></AgentID>\n   </xml>")
}

/// G2: a kf notice encrypted under the TV-8 app (self-generated, cross-checked with wechatpy).
pub const G2_PLAINTEXT: &str = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event><Token><![CDATA[ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR]]></Token><OpenKfId><![CDATA[wkxxxxxxx]]></OpenKfId></xml>";
pub const G2_RANDOM: &[u8; 16] = b"aaaabbbbccccdddd";
pub const G2_TIMESTAMP: u64 = 1409659813;
pub const G2_NONCE: &str = "1372623149";
pub const G2_MSG_SIGNATURE: &str = "0e5a437ad65bf214656e2ae7498997abe981a12b";
pub const G2_ENCRYPT: &str = "ZA4HuQypHxnRrA+A6SOHGAORuTOyCd1WZmgQ8Bc2ZgcRmGfmYvNlwdeHwCBUu+XmKymVp1DW47JQWMU2cdzJvjwC9vuLTnP9n485/K8Zd6b/ZafGmJfYqP6zGBqJiSQ/S9dZux5Z4hE6O+GapAVn40JHNpWcCX7ANC7Q6mjykO6BvefJ5Muzed5de3bYIBKCQl+XIE/PO5y7NJ8xvX4aHtuhiYTcV5dQAYV5/lL+xMGEKpqjoDndvXhfD4KOwP9AJoV5YeKI0180n1hYbHS5dKwtfpBZUBiFKa6092JSrVs/awo4XZWSeatu3LZ0ABJBthgOv0kFSjmKsqGzMyVTQ9XSjHhyue/2coI8JDkT2gf7M6XYS0NfNUxyJeP/pCg/sSknw/11sHLzMWKpMPGjtm3eMKPIAYkauleI7QsYSAO9y8fPQwUPZOdjXZxvKhxf00o50fQ1CdEY4cRAXCwqXw==";
pub const G2_TOKEN: &str = "ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR";

pub fn g2_query() -> String {
    format!("msg_signature={G2_MSG_SIGNATURE}&timestamp={G2_TIMESTAMP}&nonce={G2_NONCE}")
}

/// A body like WeCom's kf callback: corp id, ciphertext, no AgentID.
pub fn g2_body() -> String {
    xml_body(DOC_CORP_ID, G2_ENCRYPT)
}

/// TV-10 / TV-11: Tencent's newer Python samples (`callback/Sample.py`, `callback_json/Sample.py`).
pub const NEW_TOKEN: &str = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo";
pub const NEW_KEY: &str = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt";
pub const NEW_CORP_ID: &str = "ww1436e0e65a779aee";

pub const TV10A_SIGNATURE: &str = "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb";
pub const TV10A_TIMESTAMP: &str = "1476416373";
pub const TV10A_NONCE: &str = "47744683";
/// As the sample's variable holds it: already URL-decoded (`+` and `/` raw).
pub const TV10A_ECHOSTR: &str =
    "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==";

pub const TV10B_QUERY: &str =
    "msg_signature=0c3914025cb4b4d68103f6bfc8db550f79dcf48e&timestamp=1476422779&nonce=1597212914";
pub const TV10B_NOW: u64 = 1476422779;
/// `sReqData` of the sample, byte for byte.
pub const TV10B_BODY: &str = "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n<Encrypt><![CDATA[Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+]]></Encrypt>\n<AgentID><![CDATA[1000002]]></AgentID>\n</xml>";

pub const TV11_QUERY: &str =
    "msg_signature=e3647471e395139e2308c1fa963f2d648a00b90e&timestamp=1409659813&nonce=1372623149";
pub const TV11_NOW: u64 = 1409659813;
/// `sReqData` of the JSON sample: lower-case keys, and a `tousername` that is not the receive id
/// (the envelope is unsigned; only the ciphertext's receive id counts).
pub const TV11_BODY: &str = r#"{ "tousername": "wx5823bf96d3bd56c7", "encrypt": "cjhLUX7UU4yCSelv1vz7T0zT8huF51bAMVWriNvO1FMegHrQZNrtvRxbwf0fUPsFvwqR0U0fgiJNEA5Y30F2MoI2S7vv3EjVQ68C0cjw9frBoUE2Hj0BvFp9h3u6Vbsg4lc1C8AtHdaN8orKuNKkLRLuYEL52R1J3v8olJGZRLnRdVKIivixmX/eQpzgeExtp20jI1HxRP1AAZ6xZoILdqDPO549LO4WeG+685JRUTdiwcY5fjZlqeMxuT4PpMn1X9OWsS7NRj06Wa5E3Tvg4twjWp39KPfOdRte6P1T4JU=", "agentid": 218 }"#;

/// TV-12: wechatpy's WeCom tests.
pub const PY_TOKEN: &str = "123456";
pub const PY_KEY: &str = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR";
pub const PY_CORP_ID: &str = "wx49f0ab532d5d035a";

pub const TV12A_SIGNATURE: &str = "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96";
pub const TV12A_TIMESTAMP: &str = "1411443780";
pub const TV12A_ECHOSTR: &str =
    "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==";

/// TV-12b's plaintext (wechatpy's `reply`), encrypted with random `1234567890123456`.
pub const TV12B_PLAINTEXT: &str = "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>";
pub const TV12B_ENCRYPT: &str = "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3";
pub const TV12B_MSG_SIGNATURE: &str = "407518b7649e86ef23978113f92d27afa9296533";

pub const TV12C_QUERY: &str =
    "msg_signature=74d92dfeb87ba7c714f89d98870ae5eb62dff26d&timestamp=1411525903&nonce=461056294";
pub const TV12C_NOW: u64 = 1411525903;
pub const TV12C_BODY: &str = "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n<Encrypt><![CDATA[RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=]]></Encrypt>\n<AgentID><![CDATA[1]]></AgentID>\n</xml>";

pub fn key(encoding_aes_key: &str) -> EncodingAesKey {
    EncodingAesKey::parse(encoding_aes_key).expect("valid EncodingAESKey")
}

/// The app of WeCom's doc 90968 (TV-8, TV-9, G2).
pub fn doc_app() -> WecomApp {
    WecomApp::new(DOC_TOKEN, key(DOC_KEY), DOC_CORP_ID)
}

/// The app of Tencent's newer samples (TV-10, TV-11).
pub fn new_app() -> WecomApp {
    WecomApp::new(NEW_TOKEN, key(NEW_KEY), NEW_CORP_ID)
}

/// wechatpy's test app (TV-12).
pub fn py_app() -> WecomApp {
    WecomApp::new(PY_TOKEN, key(PY_KEY), PY_CORP_ID)
}

/// A GET verification query with every value URL-encoded, as WeCom sends it.
pub fn get_query(msg_signature: &str, timestamp: &str, nonce: &str, echostr: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("msg_signature", msg_signature)
        .append_pair("timestamp", timestamp)
        .append_pair("nonce", nonce)
        .append_pair("echostr", echostr)
        .finish()
}

/// An XML callback envelope without AgentID.
pub fn xml_body(corp_id: &str, encrypt: &str) -> String {
    format!("<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")
}

/// The value of query parameter `name` (URL-decoded).
pub fn query_value(query: &str, name: &str) -> String {
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .expect("parameter present")
}

/// Replaces the first occurrence of `from`, insisting there is one (so a tamper always tampers).
pub fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in {text:?}");
    text.replacen(from, to, 1)
}
