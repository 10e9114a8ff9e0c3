//! The adapter against every published WeCom vector of inbound.md §9 (TV-8 … TV-12, G2), each
//! received at its own timestamp, and the simulator reproducing them byte for byte.

mod support;

use botgate_contract::{Content, InboundMessage, Platform};
use botgate_wecom::{AppMessage, BodyFormat, Decoded, KfNotice, MessageKind, SimulatedCallback};
use support::*;

fn text_message(user: &str, msg_id: &str, text: &str) -> InboundMessage {
    InboundMessage {
        platform: Platform::Wecom,
        conversation: user.into(),
        sender: user.into(),
        message_id: msg_id.into(),
        content: Content::Text(text.into()),
    }
}

#[test]
fn tv8_url_verification_answers_the_decrypted_echostr() {
    let app = doc_app();

    let echo = app.verify_url(TV8_QUERY, TV8_NOW);

    assert_eq!(echo.as_deref(), Ok(TV8_ECHO));
}

#[test]
fn tv9_post_decodes_with_cdata_agent_id_and_line_breaks() {
    let app = doc_app();

    let decoded = app.decode(TV9_QUERY, tv9_body().as_bytes(), TV9_NOW);

    assert_eq!(
        decoded,
        Ok(Decoded::Message(AppMessage {
            message: text_message("mycreate", "4561255354251345929", "hello"),
            kind: MessageKind::Text,
            agent_id: Some(218),
        }))
    );
}

#[test]
fn tv10a_url_verification_with_the_echostr_url_encoded() {
    let app = new_app();
    let query = get_query(TV10A_SIGNATURE, TV10A_TIMESTAMP, TV10A_NONCE, TV10A_ECHOSTR);

    let echo = app.verify_url(&query, 1476416373);

    assert_eq!(echo.as_deref(), Ok("1288432023552776189"));
}

#[test]
fn tv10b_post_decodes_a_plaintext_without_any_cdata() {
    let app = new_app();

    let decoded = app.decode(TV10B_QUERY, TV10B_BODY.as_bytes(), TV10B_NOW);

    assert_eq!(
        decoded,
        Ok(Decoded::Message(AppMessage {
            message: text_message("ChenJiaShun", "1456453720", "你好"),
            kind: MessageKind::Text,
            agent_id: Some(1000002),
        }))
    );
}

#[test]
fn tv11_json_callback_verifies_and_decrypts_but_its_plaintext_is_invalid_json() {
    // The sample's params are right; its plaintext (`"FromUserName": :mycreate"`) is not JSON.
    let app = new_app();

    let decoded = app.decode(TV11_QUERY, TV11_BODY.as_bytes(), TV11_NOW);

    match decoded {
        Err(botgate_contract::AdapterError::Malformed(reason)) => {
            assert!(reason.contains("JSON"), "{reason}")
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn tv11_is_not_under_the_params_its_comment_shows() {
    // The trap: the sample's comment carries the QDG6eK app (TV-8's) and its `tousername`.
    let app = doc_app();

    let decoded = app.decode(TV11_QUERY, TV11_BODY.as_bytes(), TV11_NOW);

    assert_eq!(decoded, Err(botgate_contract::AdapterError::BadSignature));
}

#[test]
fn tv12a_url_verification_and_its_wrong_nonce() {
    let app = py_app();
    let good = get_query(TV12A_SIGNATURE, TV12A_TIMESTAMP, "437374425", TV12A_ECHOSTR);
    let bad = get_query(TV12A_SIGNATURE, TV12A_TIMESTAMP, "437374424", TV12A_ECHOSTR);

    let accepted = app.verify_url(&good, 1411443780);
    let refused = app.verify_url(&bad, 1411443780);

    assert_eq!(accepted.as_deref(), Ok("5927782489442352469"));
    assert_eq!(refused, Err(botgate_contract::AdapterError::BadSignature));
}

#[test]
fn tv12b_the_simulator_encrypts_and_signs_exactly_as_wechatpy() {
    let app = py_app();

    let request = app.sign_plaintext(
        BodyFormat::Xml,
        TV12B_PLAINTEXT,
        None,
        1411525903,
        "461056294",
        b"1234567890123456",
    );

    assert_eq!(
        query_value(&request.query, "msg_signature"),
        TV12B_MSG_SIGNATURE
    );
    assert!(
        request
            .body
            .contains(&format!("<Encrypt><![CDATA[{TV12B_ENCRYPT}]]></Encrypt>")),
        "{}",
        request.body
    );
}

#[test]
fn tv12c_post_with_a_pad_of_one_decodes() {
    let app = py_app();

    let decoded = app.decode(TV12C_QUERY, TV12C_BODY.as_bytes(), TV12C_NOW);

    assert_eq!(
        decoded,
        Ok(Decoded::Message(AppMessage {
            message: text_message("messense", "4363689963896700987", "test"),
            kind: MessageKind::Text,
            agent_id: Some(1),
        }))
    );
}

#[test]
fn g2_kf_callback_is_a_notice_with_token_and_account() {
    let app = doc_app();

    let decoded = app.decode(&g2_query(), g2_body().as_bytes(), G2_TIMESTAMP);

    assert_eq!(
        decoded,
        Ok(Decoded::Notice(KfNotice {
            token: G2_TOKEN.into(),
            open_kfid: Some("wkxxxxxxx".into()),
        }))
    );
}

#[test]
fn g2_the_simulator_reproduces_the_kf_vector_byte_for_byte() {
    let app = doc_app();
    let notice = SimulatedCallback::KfNotice {
        token: G2_TOKEN.into(),
        open_kfid: Some("wkxxxxxxx".into()),
    };

    let plaintext = notice.to_xml(DOC_CORP_ID, 1348831860);
    let request = app.sign_plaintext(
        BodyFormat::Xml,
        &plaintext,
        None,
        G2_TIMESTAMP,
        G2_NONCE,
        G2_RANDOM,
    );

    assert_eq!(plaintext, G2_PLAINTEXT);
    assert_eq!(request.query, g2_query());
    assert_eq!(request.body, g2_body());
}

#[test]
fn tv8_and_tv9_the_simulator_reproduces_the_doc_requests() {
    let app = doc_app();
    let message = SimulatedCallback::Text {
        user: "mycreate".into(),
        agent_id: 218,
        msg_id: 4561255354251345929,
        content: "hello".into(),
    };

    let get = app.sign_verification(TV8_ECHO, TV8_NOW, "263014780", b"c41b64491c2468d0");
    let post = app.sign_callback(&message, TV9_NOW, "1372623149", TV9_RANDOM);

    assert_eq!(get, TV8_QUERY);
    assert_eq!(post.query, TV9_QUERY);
    assert!(post.body.contains(TV9_ENCRYPT), "{}", post.body);
}
