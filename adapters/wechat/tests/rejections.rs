//! Every way a request is refused: tampered fields, wrong mode, hostile or broken XML, missing parameters.

mod support;

use botgate_contract::AdapterError;
use botgate_wechat::{WechatAccount, MAX_BODY_BYTES, MAX_QUERY_BYTES};
use botgate_wxcrypt::signature;
use support::*;

fn tv2_query() -> String {
    format!("signature={TV2_SIGNATURE}&timestamp={TV2_TIMESTAMP}&nonce={TV2_NONCE}")
}

fn plain_body() -> String {
    text_message("oUser", "gh_acct", "hi", 1)
}

#[test]
fn plaintext_post_with_any_signed_field_tampered_is_refused() {
    let account = doc_plain_account();
    let tampered = [
        replace_once(&tv2_query(), "899cf89e", "899cf89f"),
        replace_once(&tv2_query(), TV2_TIMESTAMP, "1714037060"),
        replace_once(&tv2_query(), TV2_NONCE, "486452657"),
        replace_once(&tv2_query(), TV2_SIGNATURE, &TV2_SIGNATURE.to_uppercase()),
    ];

    for query in tampered {
        let result = account.decode(&query, plain_body().as_bytes(), at(TV2_TIMESTAMP));

        assert_eq!(result, Err(AdapterError::BadSignature), "{query}");
    }
}

#[test]
fn url_verification_with_any_signed_field_tampered_is_refused() {
    let account = doc_plain_account();
    let tampered = [
        replace_once(TV1_QUERY, "f464b24f", "f464b24e"),
        replace_once(TV1_QUERY, "1714036504", "1714036505"),
        replace_once(TV1_QUERY, "1514711492", "1514711493"),
    ];

    for query in tampered {
        let result = WechatAccount::verify_url(&account, &query, TV1_NOW);

        assert_eq!(result, Err(AdapterError::BadSignature), "{query}");
    }
}

#[test]
fn safe_mode_post_with_any_signed_field_tampered_is_refused() {
    let account = tv4_account();
    let body = tv4_body();
    let cases = [
        (
            replace_once(TV4_QUERY, "msg_signature=6c12", "msg_signature=6c13"),
            body.clone(),
        ),
        (
            replace_once(TV4_QUERY, "1715943329", "1715943330"),
            body.clone(),
        ),
        (
            replace_once(TV4_QUERY, "1590219412", "1590219413"),
            body.clone(),
        ),
        (TV4_QUERY.to_owned(), replace_once(&body, "D7yz", "D7yy")),
        (TV4_QUERY.to_owned(), replace_once(&body, "Mg==", "Mg")),
    ];

    for (query, body) in cases {
        let result = account.decode(&query, body.as_bytes(), TV4_NOW);

        assert_eq!(result, Err(AdapterError::BadSignature), "{query}");
    }
}

#[test]
fn safe_mode_never_accepts_the_three_field_signature_alone() {
    let account = tv4_account();
    // TV-4's `signature` is valid; only `msg_signature` is wrong.
    let wrong_msg_signature = replace_once(
        TV4_QUERY,
        "msg_signature=6c12a4205838198b8fa631b3220723bb07f1015c",
        "msg_signature=cc0c594499c1634947d5b502f158ee518947db27",
    );
    let no_msg_signature = replace_once(
        TV4_QUERY,
        "&msg_signature=6c12a4205838198b8fa631b3220723bb07f1015c",
        "",
    );

    let wrong = account.decode(&wrong_msg_signature, tv4_body().as_bytes(), TV4_NOW);
    let missing = account.decode(&no_msg_signature, tv4_body().as_bytes(), TV4_NOW);

    assert_eq!(wrong, Err(AdapterError::BadSignature));
    assert_eq!(
        missing,
        Err(AdapterError::MissingParameter("msg_signature"))
    );
}

#[test]
fn a_safe_mode_url_replayed_as_plaintext_is_refused_when_encryption_is_required() {
    // The 3-field signature of a safe-mode URL also authorises a plaintext POST, whose body is
    // unsigned: the downgrade `require_encryption` exists to close.
    let downgraded = replace_once(
        TV4_QUERY,
        "&encrypt_type=aes&msg_signature=6c12a4205838198b8fa631b3220723bb07f1015c",
        "",
    );
    let forged = text_message("oVictim", "gh_97417a04a28d", "forged", 1);

    let lenient = tv4_account().decode(&downgraded, forged.as_bytes(), TV4_NOW);
    let strict = tv4_account()
        .require_encryption()
        .decode(&downgraded, forged.as_bytes(), TV4_NOW);

    assert!(lenient.is_ok());
    assert!(matches!(strict, Err(AdapterError::Malformed(_))));
}

#[test]
fn ciphertext_for_another_app_id_is_refused() {
    let account = WechatAccount::new(DOC_TOKEN, Some(key(DOC_KEY)), "wx_someone_else");

    let result = account.decode(TV4_QUERY, tv4_body().as_bytes(), TV4_NOW);

    assert_eq!(result, Err(AdapterError::WrongReceiver));
}

#[test]
fn correctly_signed_garbage_fails_to_decrypt() {
    let account = sample_account();
    let cases = [
        "AAAA",
        "not base64!",
        "",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ];

    for encrypt in cases {
        let query = aes_query(SAMPLE_TOKEN, "1", "2", encrypt);

        let result = account.decode(&query, safe_body("gh", encrypt).as_bytes(), 1);

        assert!(
            matches!(result, Err(AdapterError::Decrypt(_))),
            "{encrypt}: {result:?}"
        );
    }
}

#[test]
fn encrypted_request_to_a_plaintext_only_account_is_refused() {
    let account = WechatAccount::new(DOC_TOKEN, None, TV4_APP_ID);

    let result = account.decode(TV4_QUERY, tv4_body().as_bytes(), TV4_NOW);

    assert_eq!(result, Err(AdapterError::EncryptionNotConfigured));
}

#[test]
fn hostile_and_broken_xml_is_malformed_in_both_modes() {
    let bodies = [
        "<!DOCTYPE xml><xml><ToUserName>a</ToUserName></xml>".to_owned(),
        "<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;\">]><xml><Content>&lol2;</Content></xml>".to_owned(),
        "<!DOCTYPE xml [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><xml><Encrypt>&xxe;</Encrypt></xml>".to_owned(),
        "<xml><Content>&xxe;</Content></xml>".to_owned(),
        "<xml><ToUserName>a</ToUserName>".to_owned(),
        "<xml><ToUserName>a</FromUserName></xml>".to_owned(),
        "<notxml><Encrypt>a</Encrypt></notxml>".to_owned(),
        "{\"Encrypt\":\"a\"}".to_owned(),
        String::new(),
    ];
    let plain = doc_plain_account();
    let safe = tv4_account();

    for body in &bodies {
        let plain_result = plain.decode(&tv2_query(), body.as_bytes(), at(TV2_TIMESTAMP));
        let safe_result = safe.decode(TV4_QUERY, body.as_bytes(), TV4_NOW);

        assert!(
            matches!(plain_result, Err(AdapterError::Malformed(_))),
            "{body}: {plain_result:?}"
        );
        assert!(
            matches!(safe_result, Err(AdapterError::Malformed(_))),
            "{body}: {safe_result:?}"
        );
    }
}

#[test]
fn safe_mode_body_without_encrypt_is_malformed() {
    let account = tv4_account();

    let result = account.decode(
        TV4_QUERY,
        b"<xml><ToUserName>gh</ToUserName></xml>",
        TV4_NOW,
    );

    assert!(matches!(result, Err(AdapterError::Malformed(_))));
}

#[test]
fn decrypted_plaintext_missing_fields_is_malformed() {
    let account = sample_account();
    let crypt = sample_crypt();
    let encrypt = crypt.encrypt(b"<xml><MsgType>text</MsgType></xml>", &[7; 16]);
    let query = aes_query(SAMPLE_TOKEN, "1", "2", &encrypt);

    let result = account.decode(&query, safe_body("gh", &encrypt).as_bytes(), 1);

    assert!(matches!(result, Err(AdapterError::Malformed(_))));
}

#[test]
fn oversize_bodies_and_queries_are_too_large() {
    let account = doc_plain_account();
    let body = format!(
        "<xml><Content>{}</Content></xml>",
        "a".repeat(MAX_BODY_BYTES)
    );
    let query = format!("{}&openid={}", tv2_query(), "a".repeat(MAX_QUERY_BYTES));

    let big_body = account.decode(&tv2_query(), body.as_bytes(), at(TV2_TIMESTAMP));
    let big_query = account.decode(&query, plain_body().as_bytes(), at(TV2_TIMESTAMP));

    assert_eq!(big_body, Err(AdapterError::TooLarge));
    assert_eq!(big_query, Err(AdapterError::TooLarge));
}

#[test]
fn missing_parameters_are_named() {
    let account = sample_account();
    let sig = signature(&[SAMPLE_TOKEN, "1", "2"]);
    let post_cases = [
        ("timestamp=1&nonce=2", "signature"),
        (&*format!("signature={sig}&nonce=2"), "timestamp"),
        (&*format!("signature={sig}&timestamp=1"), "nonce"),
        ("encrypt_type=aes&timestamp=1&nonce=2", "msg_signature"),
        ("encrypt_type=aes&msg_signature=x&nonce=2", "timestamp"),
        ("encrypt_type=aes&msg_signature=x&timestamp=1", "nonce"),
    ];
    let get_cases = [
        ("timestamp=1&nonce=2&echostr=e", "signature"),
        (&*format!("signature={sig}&nonce=2&echostr=e"), "timestamp"),
        (&*format!("signature={sig}&timestamp=1&echostr=e"), "nonce"),
        (&*format!("signature={sig}&timestamp=1&nonce=2"), "echostr"),
    ];

    for (query, name) in post_cases {
        let result = account.decode(query, plain_body().as_bytes(), 1);

        assert_eq!(result, Err(AdapterError::MissingParameter(name)), "{query}");
    }
    for (query, name) in get_cases {
        let result = account.verify_url(query, 1);

        assert_eq!(result, Err(AdapterError::MissingParameter(name)), "{query}");
    }
}

#[test]
fn repeated_signed_parameters_and_unknown_modes_are_malformed() {
    let account = tv4_account();
    let repeated = format!("{TV4_QUERY}&msg_signature=6c12a4205838198b8fa631b3220723bb07f1015c");
    let unknown_mode = replace_once(TV4_QUERY, "encrypt_type=aes", "encrypt_type=sm4");

    let repeated = account.decode(&repeated, tv4_body().as_bytes(), TV4_NOW);
    let unknown_mode = account.decode(&unknown_mode, tv4_body().as_bytes(), TV4_NOW);

    assert!(matches!(repeated, Err(AdapterError::Malformed(_))));
    assert!(matches!(unknown_mode, Err(AdapterError::Malformed(_))));
}
