//! Property tests: decoding never panics on hostile input (the CI fuzz target); rendering and splitting keep their promises.

mod support;

use botgate_wechat::{markdown_to_text, split_utf8};
use proptest::prelude::*;
use support::*;

/// Query strings built from the parameters the adapter reads, with arbitrary (and sometimes
/// valid) values, so that runs reach the signature and decryption paths, not just the parser.
fn query() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        prop::sample::select(vec![
            "signature",
            "msg_signature",
            "timestamp",
            "nonce",
            "echostr",
            "encrypt_type",
            "openid",
        ])
        .prop_map(str::to_owned),
        "[a-z_%=&+]{0,8}",
    ];
    let value = prop_oneof![
        Just("aes".to_owned()),
        Just("1".to_owned()),
        "[ -~]{0,12}",
        ".{0,12}"
    ];
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
        Just(TV4_QUERY.to_owned()),
    ]
}

/// Bodies: arbitrary bytes, XML-looking fragments, and mutations of a real safe-mode body.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just("<xml>".to_owned()),
        Just("</xml>".to_owned()),
        Just("<Encrypt><![CDATA[".to_owned()),
        Just("]]></Encrypt>".to_owned()),
        Just("<MsgType>event</MsgType>".to_owned()),
        Just("<Content>".to_owned()),
        Just("&amp;&#x0;&#65;&bogus;".to_owned()),
        Just("<!DOCTYPE x [<!ENTITY e \"e\">]>".to_owned()),
        Just("<a/>".to_owned()),
        "[<>/!\\[\\]&;#a-zA-Z0-9 \n]{0,16}",
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        prop::collection::vec(fragment, 0..24).prop_map(|parts| parts.concat().into_bytes()),
        (0..400usize, any::<u8>()).prop_map(|(at, byte)| {
            let mut body = tv4_body().into_bytes();
            let at = at % body.len();
            body[at] = byte;
            body
        }),
    ]
}

proptest! {
    #[test]
    fn decode_and_verify_url_never_panic(query in query(), body in body(), now in any::<u64>()) {
        for account in [doc_plain_account(), tv4_account()] {
            let _ = account.decode(&query, &body, now);
            let _ = account.verify_url(&query, now);
        }
    }

    #[test]
    fn signed_requests_with_arbitrary_bodies_never_panic(body in body(), random in any::<[u8; 16]>()) {
        // Correctly signed, so the body reaches the XML parser and the mapping in both modes.
        let plain = plain_query(DOC_TOKEN, "1", "2");
        let encrypt = sample_crypt().encrypt(&body, &random);
        let encrypted = aes_query(SAMPLE_TOKEN, "1", "2", &encrypt);

        let _ = doc_plain_account().decode(&plain, &body, 1);
        let _ = sample_account().decode(&encrypted, safe_body("gh", &encrypt).as_bytes(), 1);
    }

    #[test]
    fn split_respects_the_limit_and_keeps_every_visible_char(
        text in "(\\PC|\n| |。|\\.|!){0,400}",
        max in 4usize..200,
    ) {
        let parts = split_utf8(&text, max);

        for part in &parts {
            prop_assert!(part.len() <= max, "{} > {max}: {part:?}", part.len());
            prop_assert!(!part.is_empty());
            prop_assert!(!part.starts_with('\n') && !part.ends_with('\n'), "{part:?}");
            prop_assert!(text.contains(part.as_str()), "{part:?} is not a slice of the text");
        }
        let visible = |text: &str| text.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        prop_assert_eq!(visible(&parts.join("\n")), visible(&text));
    }

    #[test]
    fn markdown_to_text_never_leaves_trailing_whitespace(markdown in "(\\PC|\n|[*_`#>|\\-\\[\\]()!~ ]){0,300}") {
        let text = markdown_to_text(&markdown);

        prop_assert!(!text.starts_with('\n') && !text.ends_with('\n'), "{text:?}");
        for line in text.lines() {
            prop_assert_eq!(line, line.trim_end());
        }
    }

    #[test]
    fn markdown_to_text_keeps_plain_prose(words in prop::collection::vec("[a-zA-Z0-9\u{4e00}-\u{9fff}]{1,8}", 1..30)) {
        let prose = words.join(" ");

        prop_assert_eq!(markdown_to_text(&prose), prose);
    }

    #[test]
    fn markdown_output_splits_within_wechat_limits(markdown in "(\\PC|\n){0,3000}") {
        let parts = split_utf8(&markdown_to_text(&markdown), botgate_wechat::MAX_TEXT_REPLY_BYTES);

        prop_assert!(parts.iter().all(|part| part.len() <= botgate_wechat::MAX_TEXT_REPLY_BYTES));
    }
}
