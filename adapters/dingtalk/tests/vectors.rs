//! The published vectors: G3/G3b (HTTP-mode `sign`) and TV-14…16 (event-subscription crypto),
//! each with the trap it sets.

mod support;

use botgate_contract::{AdapterError, Content};
use botgate_dingtalk::event::EventSubscription;
use botgate_dingtalk::{sign, sign_matches, ConversationType};
use botgate_wxcrypt::EncodingAesKey;
use support::*;

#[test]
fn g3_and_g3b_signatures_are_reproduced() {
    assert_eq!(sign(G3_SECRET, &G3_TIMESTAMP.to_string()), G3_SIGN);
    assert_eq!(sign(G3B_SECRET, &G3B_TIMESTAMP.to_string()), G3B_SIGN);
    assert!(sign_matches(G3_SECRET, "1577262236757", G3_SIGN));
    assert!(!sign_matches(G3B_SECRET, "1577262236757", G3_SIGN));
}

#[test]
fn the_section_6_sample_signed_as_g3_decodes() {
    let (message, reply) = message(decode_body(SAMPLE_BODY));

    assert_eq!(message.conversation, "cidAsXSBLnA==");
    assert_eq!(message.sender, "16650698");
    assert_eq!(message.message_id, "msgLICYeHgY4JtMQw==");
    // The trap: DingTalk leaves the space where it removed the robot's @Name.
    assert_eq!(message.content, Content::Text("测试数据".to_owned()));
    assert_eq!(reply.conversation_type, ConversationType::Group);
    assert_eq!(reply.session_webhook_expires_ms, Some(1690367502152));
    assert_eq!(reply.robot_code.as_deref(), Some(SAMPLE_ROBOT_CODE));
}

// TV-14..16 are WXBizMsgCrypt vectors of event subscription (§7), not robot messages.

fn key(encoding_aes_key: &str) -> EncodingAesKey {
    EncodingAesKey::parse(encoding_aes_key).expect("valid key")
}

const TV14_ENCRYPT: &str = "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxOK+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3";
const TV14_NOW_MS: u64 = 1608001896814;

/// TV-14: `DingCallbackCrypto3.py`. Its key has non-zero trailing bits and the frame pads 31.
fn tv14() -> EventSubscription {
    EventSubscription::new(
        "mryue",
        key("Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7"),
        "ding6ccabc44d2c8d38b",
    )
}

fn tv14_body() -> String {
    format!(r#"{{"encrypt":"{TV14_ENCRYPT}"}}"#)
}

#[test]
fn tv14_check_url_opens_under_either_spelling_of_the_query() {
    let subscription = tv14();
    let queries = [
        "msg_signature=03044561471240d4a14bb09372dfcfd4fd0e40cb&timeStamp=1608001896814&nonce=WL4PK6yA",
        "signature=03044561471240d4a14bb09372dfcfd4fd0e40cb&timestamp=1608001896814&nonce=WL4PK6yA",
    ];

    for query in queries {
        let event = subscription.open(query, tv14_body().as_bytes(), TV14_NOW_MS);

        let event = event.expect(query);
        assert_eq!(event.event_type, "check_url");
        assert_eq!(event.fields.len(), 1);
    }
}

#[test]
fn tv14_timestamps_are_milliseconds_not_seconds() {
    let query = "msg_signature=03044561471240d4a14bb09372dfcfd4fd0e40cb&timeStamp=1608001896814&nonce=WL4PK6yA";

    let as_seconds = tv14().open(query, tv14_body().as_bytes(), TV14_NOW_MS / 1000);

    assert!(
        matches!(as_seconds, Err(AdapterError::StaleTimestamp { .. })),
        "{as_seconds:?}"
    );
}

#[test]
fn tv14_tampered_or_ambiguous_queries_are_refused() {
    let subscription = tv14();
    let body = tv14_body();
    let query = "msg_signature=03044561471240d4a14bb09372dfcfd4fd0e40cb&timeStamp=1608001896814&nonce=WL4PK6yA";
    let open = |query: &str, body: &str| subscription.open(query, body.as_bytes(), TV14_NOW_MS);

    assert_eq!(
        open(&replace_once(query, "WL4PK6yA", "WL4PK6yB"), &body),
        Err(AdapterError::BadSignature)
    );
    assert_eq!(
        open(
            &replace_once(query, "1608001896814", "1608001896815"),
            &body
        ),
        Err(AdapterError::BadSignature)
    );
    assert_eq!(
        open(query, &replace_once(&body, "0vJi", "0vJj")),
        Err(AdapterError::BadSignature)
    );
    assert!(matches!(
        open(&format!("{query}&timestamp=1608001896814"), &body),
        Err(AdapterError::Malformed(_))
    ));
    assert_eq!(
        open("timeStamp=1608001896814&nonce=WL4PK6yA", &body),
        Err(AdapterError::MissingParameter("msg_signature"))
    );
    assert!(matches!(open(query, "{}"), Err(AdapterError::Malformed(_))));
}

/// TV-15: the Go/C# sample's *reply*: `success` encrypted with the nonce as the random prefix.
#[test]
fn tv15_the_encrypted_success_reply_is_reproduced_exactly() {
    let subscription = EventSubscription::new(
        "tokenxxxx",
        key("o1w0aum42yaptlz8alnhwikjd3jenzt9cb9wmzptgus"),
        "dingxxxxxx",
    );

    let reply =
        subscription.success_reply("1605695694141", "WelUQl6bCqcBa2fM", b"WelUQl6bCqcBa2fM");

    assert_eq!(
        reply,
        r#"{"msg_signature":"f36f4ba5337d426c7d4bca0dbcb06b3ddc1388fc","timeStamp":"1605695694141","nonce":"WelUQl6bCqcBa2fM","encrypt":"X1VSe9cTJUMZu60d3kyLYTrBq5578ZRJtteU94wG0Q4Uk6E/wQYeJRIC0/UFW5Wkya1Ihz9oXAdLlyC9TRaqsQ=="}"#
    );
}

#[test]
fn tv15_is_a_reply_not_an_event() {
    let subscription = EventSubscription::new(
        "tokenxxxx",
        key("o1w0aum42yaptlz8alnhwikjd3jenzt9cb9wmzptgus"),
        "dingxxxxxx",
    );
    let query = "msg_signature=f36f4ba5337d426c7d4bca0dbcb06b3ddc1388fc&timeStamp=1605695694141&nonce=WelUQl6bCqcBa2fM";
    let body = r#"{"encrypt":"X1VSe9cTJUMZu60d3kyLYTrBq5578ZRJtteU94wG0Q4Uk6E/wQYeJRIC0/UFW5Wkya1Ihz9oXAdLlyC9TRaqsQ=="}"#;

    let opened = subscription.open(query, body.as_bytes(), 1605695694141);

    // Authentic and decryptable, but `success` is not an event.
    assert!(
        matches!(opened, Err(AdapterError::Malformed(_))),
        "{opened:?}"
    );
}

const TV16_QUERY: &str =
    "signature=5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0&timestamp=1445827045067&nonce=nEXhMP4r";
const TV16_BODY: &str = r#"{"encrypt":"1a3NBxmCFwkCJvfoQ7WhJHB+iX3qHPsc9JbaDznE1i03peOk1LaOQoRz3+nlyGNhwmwJ3vDMG+OzrHMeiZI7gTRWVdUBmfxjZ8Ej23JVYa9VrYeJ5as7XM/ZpulX8NEQis44w53h1qAgnC3PRzM7Zc/D6Ibr0rgUathB6zRHP8PYrfgnNOS9PhSBdHlegK+AGGanfwjXuQ9+0pZcy0w9lQ=="}"#;
const TV16_KEY: &str = "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij";

/// TV-16: the Rust sample's `test_msg_decrypt`, an ISV suite check addressed to the suiteKey.
#[test]
fn tv16_suite_check_is_addressed_to_the_suite_key() {
    let subscription = EventSubscription::new("123456", key(TV16_KEY), "suite4xxxxxxxxxxxxxxx");

    let event = subscription
        .open(TV16_QUERY, TV16_BODY.as_bytes(), 1445827045067)
        .expect("TV-16 opens");

    assert_eq!(event.event_type, "check_create_suite_url");
    assert_eq!(event.fields["Random"], "LPIdSnlF");
    assert_eq!(event.fields["TestSuiteKey"], "suite4xxxxxxxxxxxxxxx");
}

#[test]
fn tv16_under_another_receive_id_is_refused() {
    let subscription = EventSubscription::new("123456", key(TV16_KEY), "ding6ccabc44d2c8d38b");

    let opened = subscription.open(TV16_QUERY, TV16_BODY.as_bytes(), 1445827045067);

    assert_eq!(opened, Err(AdapterError::WrongReceiver));
}

#[test]
fn a_success_reply_round_trips_as_the_platform_would_check_it() {
    let subscription = tv14();

    let reply = subscription.success_reply("1608001896814", "abcdefgh", &[5; 16]);
    let reply: serde_json::Value = serde_json::from_str(&reply).expect("JSON");

    assert_eq!(reply["timeStamp"], "1608001896814");
    assert_eq!(reply["nonce"], "abcdefgh");
    let crypt = botgate_wxcrypt::WxCrypt::new(
        "mryue",
        key("Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7"),
        "ding6ccabc44d2c8d38b",
    );
    assert_eq!(
        crypt.verify_and_decrypt(
            reply["msg_signature"].as_str().expect("string"),
            "1608001896814",
            "abcdefgh",
            reply["encrypt"].as_str().expect("string"),
        ),
        Ok(b"success".to_vec())
    );
}
