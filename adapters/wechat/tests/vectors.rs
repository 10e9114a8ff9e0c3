//! The adapter against the published vectors of inbound.md §9 and a full safe-mode round trip.

mod support;

use botgate_contract::{Content, InboundMessage, Platform};
use botgate_wechat::wire::parse_message;
use botgate_wechat::{MessageKind, ReplyContext, WechatAccount};
use botgate_wxcrypt::signature;
use support::*;

#[test]
fn tv1_url_verification_returns_echostr() {
    let account = doc_plain_account();

    let echo = account.verify_url(TV1_QUERY, TV1_NOW);

    assert_eq!(echo.as_deref(), Ok("4375120948345356249"));
}

#[test]
fn tv1_keyed_accounts_verify_the_url_the_same_way() {
    let account = tv4_account();

    let echo = account.verify_url(TV1_QUERY, TV1_NOW);

    assert_eq!(echo.as_deref(), Ok("4375120948345356249"));
}

#[test]
fn url_verification_returns_the_decoded_echostr_byte_for_byte() {
    let account = doc_plain_account();
    let sig = signature(&[DOC_TOKEN, "1", "2"]);

    let echo = account.verify_url(
        &format!("signature={sig}&timestamp=1&nonce=2&echostr=a%2Bb%2Fc%3D%3D%E4%BD%A0"),
        1,
    );

    assert_eq!(echo.as_deref(), Ok("a+b/c==你"));
}

#[test]
fn tv2_plaintext_post_decodes() {
    let account = doc_plain_account();
    let query = format!(
        "signature={TV2_SIGNATURE}&timestamp={TV2_TIMESTAMP}&nonce={TV2_NONCE}&openid=oUser"
    );
    let body = text_message("oUser", "gh_97417a04a28d", "hello ]]", 6054768590064713728);

    let decoded = account
        .decode(&query, body.as_bytes(), at(TV2_TIMESTAMP))
        .unwrap();

    assert_eq!(
        decoded.message,
        InboundMessage {
            platform: Platform::Wechat,
            conversation: "oUser".into(),
            sender: "oUser".into(),
            message_id: "6054768590064713728".into(),
            content: Content::Text("hello ]]".into()),
        }
    );
    assert_eq!(decoded.kind, MessageKind::Text);
    assert_eq!(
        decoded.reply,
        ReplyContext {
            user: "oUser".into(),
            account: "gh_97417a04a28d".into(),
            encrypted: false,
            nonce: TV2_NONCE.into(),
        }
    );
}

#[test]
fn tv4_safe_mode_event_decodes_and_is_ignored() {
    let account = tv4_account();

    let decoded = account
        .decode(TV4_QUERY, tv4_body().as_bytes(), TV4_NOW)
        .unwrap();

    assert_eq!(decoded.kind, MessageKind::Event);
    assert_eq!(decoded.message.sender, "o9AgO5Kd5ggOC-bXrbNODIiE3bGY");
    assert_eq!(
        decoded.message.content,
        Content::Ignored {
            kind: "debug_demo".into()
        }
    );
    assert_eq!(
        decoded.message.message_id,
        "ev:o9AgO5Kd5ggOC-bXrbNODIiE3bGY:1715943329:debug_demo:"
    );
    assert_eq!(
        decoded.reply,
        ReplyContext {
            user: "o9AgO5Kd5ggOC-bXrbNODIiE3bGY".into(),
            account: "gh_97417a04a28d".into(),
            encrypted: true,
            nonce: "1590219412".into(),
        }
    );
}

fn tv5_query() -> String {
    let plain = signature(&[SAMPLE_TOKEN, TV5_TIMESTAMP, TV5_NONCE]);
    format!("signature={plain}&timestamp={TV5_TIMESTAMP}&nonce={TV5_NONCE}&openid=oyORnuP8q7ou2gfYjqLzSIWZf0rs&encrypt_type=aes&msg_signature={TV5_MSG_SIGNATURE}")
}

#[test]
fn tv5_compatible_mode_decodes_the_encrypted_copy() {
    let account = sample_account();

    let decoded = account
        .decode(&tv5_query(), TV5_BODY.as_bytes(), at(TV5_TIMESTAMP))
        .unwrap();

    assert_eq!(
        decoded.message,
        InboundMessage {
            platform: Platform::Wechat,
            conversation: "oyORnuP8q7ou2gfYjqLzSIWZf0rs".into(),
            sender: "oyORnuP8q7ou2gfYjqLzSIWZf0rs".into(),
            message_id: "6054768590064713728".into(),
            content: Content::Text("abcdteT".into()),
        }
    );
    assert!(decoded.reply.encrypted);
    assert_eq!(decoded.reply.account, "gh_10f6c3c3ac5a");
}

#[test]
fn tv5_compatible_mode_ignores_the_unsigned_plaintext_copies() {
    let account = sample_account();
    let body = replace_once(TV5_BODY, "[abcdteT]", "[forged question]");
    let body = replace_once(&body, "[oyORnuP8q7ou2gfYjqLzSIWZf0rs]", "[oVictim]");
    let body = replace_once(&body, "6054768590064713728", "1");

    let decoded = account
        .decode(&tv5_query(), body.as_bytes(), at(TV5_TIMESTAMP))
        .unwrap();

    assert_eq!(decoded.message.content, Content::Text("abcdteT".into()));
    assert_eq!(decoded.message.sender, "oyORnuP8q7ou2gfYjqLzSIWZf0rs");
    assert_eq!(decoded.message.message_id, "6054768590064713728");
}

#[test]
fn tv6_safe_mode_text_decodes() {
    let account = sample_account();
    let query = format!("timestamp={TV6_TIMESTAMP}&nonce={TV6_NONCE}&encrypt_type=aes&msg_signature={TV6_MSG_SIGNATURE}");
    let body = safe_body("gh_10f6c3c3ac5a", TV6_ENCRYPT);

    let decoded = account
        .decode(&query, body.as_bytes(), at(TV6_TIMESTAMP))
        .unwrap();

    assert_eq!(decoded.message.content, Content::Text("abcdteT".into()));
    assert_eq!(decoded.message.message_id, "6057404712141979648");
    assert_eq!(decoded.kind, MessageKind::Text);
}

#[test]
fn safe_mode_round_trip_through_decode_and_an_encrypted_reply() {
    let account = sample_account();
    let crypt = sample_crypt();
    let request = text_message("oUser", "gh_acct", "你好 <b>&", 18_446_744_073_709_551_615);
    let encrypt = crypt.encrypt(request.as_bytes(), b"0123456789abcdef");
    let query = aes_query(SAMPLE_TOKEN, "1700000001", "nonce42", &encrypt);
    let answer = "答案：a ]]> b\n第二行";

    let decoded = account
        .decode(
            &query,
            safe_body("gh_acct", &encrypt).as_bytes(),
            1_700_000_001,
        )
        .unwrap();
    let reply = account.render_reply(&decoded.reply, answer, 1_700_000_005, b"fedcba9876543210");

    assert_eq!(decoded.message.content, Content::Text("你好 <b>&".into()));
    assert_eq!(decoded.message.message_id, "18446744073709551615");
    assert_eq!(element(&reply, "TimeStamp"), "1700000005");
    assert_eq!(element(&reply, "Nonce"), "nonce42");
    let plaintext = crypt
        .verify_and_decrypt(
            &element(&reply, "MsgSignature"),
            &element(&reply, "TimeStamp"),
            &element(&reply, "Nonce"),
            &element(&reply, "Encrypt"),
        )
        .unwrap();
    let inner = parse_message(&plaintext).unwrap();
    assert_eq!(inner.to_user_name.as_deref(), Some("oUser"));
    assert_eq!(inner.from_user_name.as_deref(), Some("gh_acct"));
    assert_eq!(inner.create_time, Some(1_700_000_005));
    assert_eq!(inner.msg_type.as_deref(), Some("text"));
    assert_eq!(inner.content.as_deref(), Some(answer));
}

#[test]
fn plaintext_reply_is_plain_xml_that_reads_back_with_cdata_terminators() {
    let account = doc_plain_account();
    let query = plain_query(DOC_TOKEN, "1700000001", "n1");
    let body = text_message("oUser", "gh_acct", "q", 1);
    let answer = "x]]>y]]]]>z]]";

    let decoded = account
        .decode(&query, body.as_bytes(), 1_700_000_001)
        .unwrap();
    let reply = account.render_reply(&decoded.reply, answer, 1_700_000_002, &[0; 16]);

    let parsed = parse_message(reply.as_bytes()).unwrap();
    assert_eq!(parsed.content.as_deref(), Some(answer));
    assert_eq!(parsed.to_user_name.as_deref(), Some("oUser"));
    assert_eq!(parsed.from_user_name.as_deref(), Some("gh_acct"));
    assert_eq!(parsed.create_time, Some(1_700_000_002));
}

#[test]
fn cdata_less_and_cdata_wrapped_numbers_decode_alike() {
    let account = doc_plain_account();
    let query = plain_query(DOC_TOKEN, "1", "2");
    let bare = "<xml><ToUserName>gh_a</ToUserName><FromUserName>oUser</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>你好</Content><MsgId>1456453720</MsgId></xml>";
    let wrapped = "<xml>\n  <ToUserName><![CDATA[gh_a]]></ToUserName>\n  <FromUserName><![CDATA[oUser]]></FromUserName>\n  <CreateTime><![CDATA[1]]></CreateTime>\n  <MsgType><![CDATA[text]]></MsgType>\n  <Content><![CDATA[你好]]></Content>\n  <MsgId><![CDATA[ 1456453720 ]]></MsgId>\n</xml>";

    let bare = account.decode(&query, bare.as_bytes(), 1).unwrap();
    let wrapped = account.decode(&query, wrapped.as_bytes(), 1).unwrap();

    assert_eq!(bare, wrapped);
    assert_eq!(bare.message.message_id, "1456453720");
}

#[test]
fn an_encrypted_context_without_a_key_is_acknowledged_not_downgraded() {
    let account = WechatAccount::new(DOC_TOKEN, None, "wx");
    let context = ReplyContext {
        user: "oUser".into(),
        account: "gh".into(),
        encrypted: true,
        nonce: "n".into(),
    };

    let reply = account.render_reply(&context, "secret answer", 1, &[0; 16]);

    assert_eq!(reply, botgate_wechat::ACKNOWLEDGE);
}

#[test]
fn debug_redacts_the_token_and_key() {
    let account = WechatAccount::new("super-secret-token", Some(key(SAMPLE_KEY)), SAMPLE_APP_ID);

    let debug = format!("{account:?}");

    assert!(!debug.contains("super-secret-token"));
    assert!(!debug.contains(SAMPLE_KEY));
    assert!(debug.contains(SAMPLE_APP_ID));
}
