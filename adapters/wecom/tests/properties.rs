//! Property tests: decoding never panics on hostile input, and every simulated message decodes
//! back to what was sent.

mod support;

use botgate_contract::Content;
use botgate_wecom::kf::SyncMsgResponse;
use botgate_wecom::{BodyFormat, Decoded, SimulatedCallback};
use proptest::prelude::*;
use support::*;

/// Query strings built from the parameters the adapter reads, with arbitrary (and sometimes
/// valid) values, so that runs reach the signature path, not just the parser.
fn query() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        prop::sample::select(vec!["msg_signature", "timestamp", "nonce", "echostr"])
            .prop_map(str::to_owned),
        "[a-z_%=&+]{0,8}",
    ];
    let value = prop_oneof![Just("1".to_owned()), "[ -~]{0,12}", ".{0,12}"];
    let pairs = prop::collection::vec((name, value), 0..8);
    prop_oneof![
        pairs.prop_map(|pairs| {
            pairs
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("&")
        }),
        ".{0,200}",
        Just(TV9_QUERY.to_owned()),
        Just(TV8_QUERY.to_owned()),
    ]
}

/// Bodies: arbitrary bytes, XML- and JSON-looking fragments, and mutations of a real body.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just("<xml>".to_owned()),
        Just("</xml>".to_owned()),
        Just("<Encrypt><![CDATA[".to_owned()),
        Just("]]></Encrypt>".to_owned()),
        Just("{\"encrypt\":".to_owned()),
        Just("\"a\"}".to_owned()),
        Just("&amp;&#x0;&#65;&bogus;".to_owned()),
        Just("<!DOCTYPE x [<!ENTITY e \"e\">]>".to_owned()),
        "[<>/!\\[\\]&;#{}\":,a-zA-Z0-9 \n]{0,16}",
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        prop::collection::vec(fragment, 0..24).prop_map(|parts| parts.concat().into_bytes()),
        (0..700usize, any::<u8>()).prop_map(|(at, byte)| {
            let mut body = tv9_body().into_bytes();
            let at = at % body.len();
            body[at] = byte;
            body
        }),
    ]
}

proptest! {
    #[test]
    fn decode_and_verify_url_never_panic(query in query(), body in body(), now in any::<u64>()) {
        let app = doc_app();

        let _ = app.decode(&query, &body, now);
        let _ = app.verify_url(&query, now);
    }

    #[test]
    fn signed_arbitrary_plaintexts_never_panic(plaintext in body(), random in any::<[u8; 16]>(), json in any::<bool>()) {
        // Correctly signed and encrypted, so the plaintext reaches both parsers and the mapping.
        let app = doc_app();
        let format = if json { BodyFormat::Json } else { BodyFormat::Xml };
        let plaintext = String::from_utf8_lossy(&plaintext);

        let request = app.sign_plaintext(format, &plaintext, None, 1, "n", &random);

        let _ = app.decode(&request.query, request.body.as_bytes(), 1);
    }

    #[test]
    fn sync_responses_never_panic(body in body()) {
        if let Ok(response) = SyncMsgResponse::parse(&body) {
            let _ = response.items().count();
        }
    }

    #[test]
    fn any_text_round_trips(content in "\\PC{0,300}", user in "[A-Za-z0-9_.-]{1,32}", msg_id in any::<u64>(), random in any::<[u8; 16]>()) {
        let app = new_app();
        let callback = SimulatedCallback::Text { user: user.clone(), agent_id: 1, msg_id, content: content.clone() };

        let request = app.sign_callback(&callback, 1_700_000_000, "n", &random);
        let decoded = app.decode(&request.query, request.body.as_bytes(), 1_700_000_000);

        match decoded {
            Ok(Decoded::Message(message)) => {
                prop_assert_eq!(message.message.content, Content::Text(content));
                prop_assert_eq!(message.message.sender, user);
                prop_assert_eq!(message.message.message_id, msg_id.to_string());
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }
}
