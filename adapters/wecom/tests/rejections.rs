//! Every way a request is refused: tampered fields, another corp's ciphertext, hostile or broken
//! bodies, missing and repeated parameters, oversize input.

mod support;

use botgate_contract::AdapterError;
use botgate_wecom::{BodyFormat, WecomApp, MAX_BODY_BYTES, MAX_QUERY_BYTES};
use botgate_wxcrypt::signature;
use support::*;

#[test]
fn url_verification_with_any_signed_field_tampered_is_refused() {
    let app = doc_app();
    let tampered = [
        replace_once(TV8_QUERY, "msg_signature=5c45", "msg_signature=5c46"),
        replace_once(TV8_QUERY, "1409659589", "1409659590"),
        replace_once(TV8_QUERY, "263014780", "263014781"),
        replace_once(TV8_QUERY, "echostr=P9nA", "echostr=P9nB"),
        // `+` undecoded would be a space: the signature covers the URL-decoded echostr.
        replace_once(TV8_QUERY, "%2B4RPcs8", "+4RPcs8"),
        replace_once(
            TV8_QUERY,
            "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
            "5C45FF5E21C57E6AD56BAC8758B79B1D9AC89FD3",
        ),
    ];

    for query in tampered {
        let result = app.verify_url(&query, TV8_NOW);

        assert_eq!(result, Err(AdapterError::BadSignature), "{query}");
    }
}

#[test]
fn post_with_any_signed_field_tampered_is_refused() {
    let app = doc_app();
    let body = tv9_body();
    let cases = [
        (
            replace_once(TV9_QUERY, "msg_signature=4777", "msg_signature=4778"),
            body.clone(),
        ),
        (
            replace_once(TV9_QUERY, "1409659813", "1409659814"),
            body.clone(),
        ),
        (
            replace_once(TV9_QUERY, "1372623149", "1372623148"),
            body.clone(),
        ),
        (TV9_QUERY.to_owned(), replace_once(&body, "RypEv", "RypEw")),
        (TV9_QUERY.to_owned(), replace_once(&body, "E7Q==", "E7Q")),
    ];

    for (query, body) in cases {
        let result = app.decode(&query, body.as_bytes(), TV9_NOW);

        assert_eq!(result, Err(AdapterError::BadSignature), "{query}");
    }
}

#[test]
fn unsigned_envelope_fields_do_not_matter() {
    // Only Encrypt is signed: a forged outer ToUserName/AgentID changes nothing (and is not
    // trusted: the AgentID reported is the plaintext's).
    let app = doc_app();
    let body = replace_once(&tv9_body(), "<![CDATA[218]]>", "<![CDATA[999]]>");

    let decoded = app.decode(TV9_QUERY, body.as_bytes(), TV9_NOW);

    match decoded {
        Ok(botgate_wecom::Decoded::Message(message)) => assert_eq!(message.agent_id, Some(218)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ciphertext_for_another_corp_is_refused() {
    let other_corp = WecomApp::new(DOC_TOKEN, key(DOC_KEY), "ww_someone_else");

    let post = other_corp.decode(TV9_QUERY, tv9_body().as_bytes(), TV9_NOW);
    let get = other_corp.verify_url(TV8_QUERY, TV8_NOW);
    let notice = other_corp.decode(&g2_query(), g2_body().as_bytes(), G2_TIMESTAMP);

    assert_eq!(post, Err(AdapterError::WrongReceiver));
    assert_eq!(get, Err(AdapterError::WrongReceiver));
    assert_eq!(notice, Err(AdapterError::WrongReceiver));
}

#[test]
fn correctly_signed_garbage_fails_to_decrypt() {
    let app = doc_app();
    let cases = [
        "AAAA",
        "not base64!",
        "",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ];

    for encrypt in cases {
        let sig = signature(&[DOC_TOKEN, "1", "2", encrypt]);
        let query = format!("msg_signature={sig}&timestamp=1&nonce=2");

        let result = app.decode(&query, xml_body(DOC_CORP_ID, encrypt).as_bytes(), 1);

        assert!(
            matches!(result, Err(AdapterError::Decrypt(_))),
            "{encrypt}: {result:?}"
        );
    }
}

#[test]
fn signed_plaintexts_that_are_not_messages_are_malformed_never_a_panic() {
    let app = doc_app();
    let plaintexts = [
        "{ \"FromUserName\": :mycreate\" }",
        "<xml><MsgType>text</MsgType></xml>",
        "<!DOCTYPE xml [<!ENTITY e \"e\">]><xml><Content>&e;</Content></xml>",
        "<xml><FromUserName>u</FromUserName><MsgType>text</MsgType><Content>x</Content><MsgId>-1</MsgId></xml>",
        r#"{"FromUserName":"u","MsgType":"text","Content":"x","MsgId":1.5}"#,
        r#"{"FromUserName":["u"],"MsgType":"text","Content":"x","MsgId":1}"#,
        r#"{"MsgType":"event","Event":"kf_msg_or_event"}"#,
        "not a document",
        "",
    ];

    for plaintext in plaintexts {
        for format in [BodyFormat::Xml, BodyFormat::Json] {
            let request = app.sign_plaintext(format, plaintext, Some(1), 1, "n", &[3; 16]);

            let result = app.decode(&request.query, request.body.as_bytes(), 1);

            assert!(
                matches!(result, Err(AdapterError::Malformed(_))),
                "{plaintext}: {result:?}"
            );
        }
    }
}

#[test]
fn an_echostr_that_is_not_utf8_is_malformed() {
    let app = doc_app();
    let query = app.sign_verification("ok", 1, "n", &[1; 16]);
    let crypt = botgate_wxcrypt::WxCrypt::new(DOC_TOKEN, key(DOC_KEY), DOC_CORP_ID);
    let echostr = crypt.encrypt(&[0xff, 0xfe], &[1; 16]);
    let sig = signature(&[DOC_TOKEN, "1", "n", &echostr]);

    let fine = app.verify_url(&query, 1);
    let binary = app.verify_url(&get_query(&sig, "1", "n", &echostr), 1);

    assert_eq!(fine.as_deref(), Ok("ok"));
    assert!(
        matches!(binary, Err(AdapterError::Malformed(_))),
        "{binary:?}"
    );
}

#[test]
fn hostile_and_broken_envelopes_are_malformed() {
    let bodies = [
        "<!DOCTYPE xml><xml><Encrypt>a</Encrypt></xml>",
        "<!DOCTYPE xml [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><xml><Encrypt>&xxe;</Encrypt></xml>",
        "<xml><Encrypt>a</Encrypt><Encrypt>b</Encrypt></xml>",
        "<xml><ToUserName>ww</ToUserName></xml>",
        "<notxml><Encrypt>a</Encrypt></notxml>",
        "<xml><Encrypt>a</xml>",
        "{\"encrypt\": 1}",
        "{\"encrypt\": \"a\", \"Encrypt\": \"a\"}",
        "{\"tousername\": \"ww\"}",
        "{\"encrypt\": \"a\"",
        "",
    ];

    for body in bodies {
        let result = doc_app().decode(TV9_QUERY, body.as_bytes(), TV9_NOW);

        assert!(
            matches!(result, Err(AdapterError::Malformed(_))),
            "{body}: {result:?}"
        );
    }
}

#[test]
fn missing_parameters_are_named() {
    let app = doc_app();
    let body = tv9_body();
    let post_cases = [
        ("timestamp=1&nonce=2", "msg_signature"),
        ("msg_signature=x&nonce=2", "timestamp"),
        ("msg_signature=x&timestamp=1", "nonce"),
        // Only WeChat's 3-field `signature`: WeCom never sends it, and it covers no body.
        ("signature=x&timestamp=1&nonce=2", "msg_signature"),
    ];
    let get_cases = [
        ("timestamp=1&nonce=2&echostr=e", "msg_signature"),
        ("msg_signature=x&nonce=2&echostr=e", "timestamp"),
        ("msg_signature=x&timestamp=1&echostr=e", "nonce"),
        ("msg_signature=x&timestamp=1&nonce=2", "echostr"),
    ];

    for (query, name) in post_cases {
        let result = app.decode(query, body.as_bytes(), 1);

        assert_eq!(result, Err(AdapterError::MissingParameter(name)), "{query}");
    }
    for (query, name) in get_cases {
        let result = app.verify_url(query, 1);

        assert_eq!(result, Err(AdapterError::MissingParameter(name)), "{query}");
    }
}

#[test]
fn repeated_signed_parameters_are_malformed() {
    let repeated = format!("{TV9_QUERY}&nonce=1372623149");

    let result = doc_app().decode(&repeated, tv9_body().as_bytes(), TV9_NOW);

    assert!(
        matches!(result, Err(AdapterError::Malformed(_))),
        "{result:?}"
    );
}

#[test]
fn oversize_bodies_and_queries_are_too_large() {
    let app = doc_app();
    let body = format!(
        "<xml><Encrypt>{}</Encrypt></xml>",
        "A".repeat(MAX_BODY_BYTES)
    );
    let query = format!("{TV9_QUERY}&padding={}", "a".repeat(MAX_QUERY_BYTES));

    let big_body = app.decode(TV9_QUERY, body.as_bytes(), TV9_NOW);
    let big_query = app.decode(&query, tv9_body().as_bytes(), TV9_NOW);

    assert_eq!(big_body, Err(AdapterError::TooLarge));
    assert_eq!(big_query, Err(AdapterError::TooLarge));
}

#[test]
fn a_non_numeric_timestamp_is_malformed_once_signed() {
    let app = doc_app();
    let sig = signature(&[DOC_TOKEN, "soon", "2", G2_ENCRYPT]);
    let query = format!("msg_signature={sig}&timestamp=soon&nonce=2");

    let result = app.decode(&query, g2_body().as_bytes(), 1);

    assert!(
        matches!(result, Err(AdapterError::Malformed(_))),
        "{result:?}"
    );
}
