//! The signed webhook channel's adapter passes the conformance kit every adapter must pass.

use botgate::channels::webhook::{sign, WebhookAdapter, SIGNATURE_HEADER};
use botgate_testkit::conformance::{check, Fixture, Request};
use secrecy::SecretString;

use crate::harness::SECRET;

#[test]
fn the_webhook_adapter_passes_the_conformance_kit() {
    let adapter = WebhookAdapter::new(SecretString::from(SECRET));
    let body = br#"{"conversation":"c-1","sender":"u-1","message_id":"m-1","text":"hi"}"#.to_vec();
    let signature = sign(SECRET.as_bytes(), &body);
    let valid = Request::post(
        "",
        vec![(SIGNATURE_HEADER.to_owned(), signature.clone())],
        body,
    );
    let mut forged = signature.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'0' { b'1' } else { b'0' };

    check(
        &adapter,
        &Fixture {
            now_secs: botgate::clock::unix_secs(),
            retry: valid.clone(),
            tampered: vec![
                ("body", valid.replaced(r#""text":"hi""#, r#""text":"ho""#)),
                (
                    "signature",
                    valid.replaced(&signature, &String::from_utf8(forged).unwrap()),
                ),
            ],
            required: vec![SIGNATURE_HEADER],
            handshake: None,
            open_reply: None,
            valid,
        },
    );
}
