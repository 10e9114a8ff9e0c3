//! How robot messages map to conversations: who is answered, in which conversation, with what.

mod support;

use botgate_contract::{Content, Inbound, Platform};
use botgate_dingtalk::{decode_robot_message, ConversationType};
use serde_json::json;
use support::*;

fn single(changes: serde_json::Value) -> String {
    let mut base = json!({
        "conversationType": "1",
        "conversationId": "cidSingleChat==",
        "conversationTitle": null,
        "isInAtList": null,
        "atUsers": null,
    });
    if let (Some(base), Some(changes)) = (base.as_object_mut(), changes.as_object()) {
        base.extend(changes.clone());
    }
    sample_with(base)
}

#[test]
fn a_one_to_one_message_is_always_answered() {
    let (message, reply) = message(decode_body(&single(json!({}))));

    assert_eq!(message.platform, Platform::Dingtalk);
    assert_eq!(message.conversation, "cidSingleChat==");
    assert_eq!(message.sender, "16650698");
    assert_eq!(message.message_id, "msgLICYeHgY4JtMQw==");
    assert_eq!(message.content, Content::Text("测试数据".into()));
    assert_eq!(reply.conversation_type, ConversationType::Single);
    assert!(reply.at_user_ids().is_empty(), "no @ in a one-to-one chat");
}

#[test]
fn a_group_message_mentioning_the_robot_is_answered_with_a_mention() {
    let (message, reply) = message(decode_body(SAMPLE_BODY));

    assert_eq!(message.conversation, "cidAsXSBLnA==");
    assert_eq!(reply.conversation_id, "cidAsXSBLnA==");
    assert!(reply.is_group());
    assert_eq!(reply.at_user_ids(), vec!["16650698".to_owned()]);
    assert_eq!(reply.sender_id, "$:LWCP_v1:$sender");
    assert_eq!(
        reply.session_webhook.as_deref(),
        Some("https://oapi.dingtalk.com/robot/sendBySession?session=76da0c1b")
    );
}

#[test]
fn a_group_message_not_mentioning_the_robot_is_ignored() {
    for body in [
        sample_with(json!({ "isInAtList": false })),
        sample_with(json!({ "isInAtList": null })),
    ] {
        assert_eq!(decode_body(&body), Ok(Inbound::Ignore), "{body}");
    }
}

#[test]
fn senders_from_another_organisation_fall_back_to_their_sender_id() {
    let (message, reply) = message(decode_body(&sample_with(json!({ "senderStaffId": null }))));

    assert_eq!(message.sender, "$:LWCP_v1:$sender");
    assert_eq!(reply.sender_staff_id, None);
    assert!(reply.at_user_ids().is_empty(), "no userid to @");
}

#[test]
fn text_is_trimmed_but_other_mentions_are_kept_as_delivered() {
    let body = sample_with(json!({ "text": { "content": "  @张三 帮我看看 @李四\n" } }));

    let (message, _) = message(decode_body(&body));

    assert_eq!(
        message.content,
        Content::Text("@张三 帮我看看 @李四".into())
    );
}

#[test]
fn other_message_types_map_to_their_content() {
    let cases = [
        (
            json!({ "msgtype": "audio", "content": { "recognition": " 你好 ", "downloadCode": "d" } }),
            Content::Voice {
                recognition: Some("你好".into()),
            },
        ),
        (
            json!({ "msgtype": "audio", "content": { "downloadCode": "d" } }),
            Content::Voice { recognition: None },
        ),
        (
            json!({ "msgtype": "picture", "content": { "downloadCode": "d", "pictureDownloadCode": "p" } }),
            Content::Ignored {
                kind: "picture".into(),
            },
        ),
        (
            json!({ "msgtype": "richText", "content": { "richText": [
                { "text": " 看这个" }, { "type": "picture", "downloadCode": "d" }, { "text": "图 " }
            ] } }),
            Content::Text("看这个图".into()),
        ),
        (
            json!({ "msgtype": "richText", "content": { "richText": [{ "type": "picture", "downloadCode": "d" }] } }),
            Content::Ignored {
                kind: "richText".into(),
            },
        ),
        (
            json!({ "msgtype": "file", "content": { "fileName": "a.pdf" } }),
            Content::Ignored {
                kind: "file".into(),
            },
        ),
        (
            json!({ "msgtype": "unknownMsgType" }),
            Content::Ignored {
                kind: "unknownMsgType".into(),
            },
        ),
    ];

    for (changes, expected) in cases {
        let mut changes = changes;
        changes["text"] = serde_json::Value::Null;

        let (message, _) = message(decode_body(&sample_with(changes.clone())));

        assert_eq!(message.content, expected, "{changes}");
    }
}

#[test]
fn unknown_fields_are_ignored() {
    let body = sample_with(json!({ "somethingNew": { "nested": [1, 2] }, "isAdmin": false }));

    assert!(decode_body(&body).is_ok());
}

#[test]
fn stream_data_maps_exactly_like_an_http_body() {
    let over_stream = decode_robot_message(SAMPLE_BODY.as_bytes());

    assert_eq!(over_stream, decode_body(SAMPLE_BODY));
}
