//! What goes back to DingTalk: session-webhook bodies, robot OpenAPI bodies (whose `msgParam`
//! is a string of JSON), the access token, the webhook's usability, and how answers are cut.

mod support;

use botgate_dingtalk::outbound::{
    preview_title, session_webhook_usable, webhook_host_allowed, AccessTokenRequest,
    AccessTokenResponse, BatchSendOto, BatchSendOtoResponse, GroupMessageSend, OpenApiSend,
    SessionWebhookMessage, SessionWebhookResponse, BATCH_SEND_OTO_URL, DEFAULT_WEBHOOK_HOSTS,
    GROUP_MESSAGE_SEND_URL, PARTS, PART_BYTES, WEBHOOK_SAFETY_MARGIN,
};
use botgate_dingtalk::{OutgoingMessage, ReplyContext};
use serde_json::{json, Value};
use support::*;

const MARKDOWN: OutgoingMessage<'static> = OutgoingMessage::Markdown {
    title: "答复",
    text: "## 答复\n**粗体** \"引号\"",
};

fn group_reply() -> ReplyContext {
    message(decode_body(SAMPLE_BODY)).1
}

fn single_reply() -> ReplyContext {
    let body = sample_with(json!({ "conversationType": "1", "isInAtList": null }));
    message(decode_body(&body)).1
}

#[test]
fn group_webhook_replies_mention_the_sender() {
    let reply = group_reply();

    assert_eq!(
        reply.webhook_body(&OutgoingMessage::Text("你好")),
        r#"{"msgtype":"text","text":{"content":"你好"},"at":{"atUserIds":["16650698"],"isAtAll":false}}"#
    );
    assert_eq!(
        reply.webhook_body(&MARKDOWN),
        r###"{"msgtype":"markdown","markdown":{"title":"答复","text":"## 答复\n**粗体** \"引号\""},"at":{"atUserIds":["16650698"],"isAtAll":false}}"###
    );
}

#[test]
fn one_to_one_webhook_replies_mention_nobody() {
    let reply = single_reply();

    assert_eq!(
        reply.webhook_body(&OutgoingMessage::Text("你好")),
        r#"{"msgtype":"text","text":{"content":"你好"}}"#
    );
}

#[test]
fn webhook_bodies_read_back() {
    let body = group_reply().webhook_body(&MARKDOWN);

    let parsed: SessionWebhookMessage = serde_json::from_str(&body).unwrap();

    assert_eq!(parsed.body_text(), Some("## 答复\n**粗体** \"引号\""));
    assert_eq!(parsed.at.unwrap().at_user_ids, vec!["16650698".to_owned()]);
    let answer: SessionWebhookResponse =
        serde_json::from_str(r#"{"errcode":0,"errmsg":"ok"}"#).unwrap();
    assert!(answer.is_ok());
}

#[test]
fn batch_send_carries_its_parameters_as_a_json_string() {
    let body = BatchSendOto::new("dingrobot", &["user1", "user2"], &MARKDOWN);

    let json: Value = serde_json::to_value(&body).unwrap();

    assert_eq!(json["robotCode"], "dingrobot");
    assert_eq!(json["userIds"], json!(["user1", "user2"]));
    assert_eq!(json["msgKey"], "sampleMarkdown");
    let param = json["msgParam"].as_str().expect("msgParam is a string");
    assert_eq!(
        serde_json::from_str::<Value>(param).unwrap(),
        json!({ "title": "答复", "text": "## 答复\n**粗体** \"引号\"" })
    );
}

#[test]
fn group_send_carries_its_parameters_as_a_json_string() {
    let body = GroupMessageSend::new("dingrobot", "cidAsXSBLnA==", &OutgoingMessage::Text("你好"));

    assert_eq!(
        serde_json::to_string(&body).unwrap(),
        r#"{"robotCode":"dingrobot","openConversationId":"cidAsXSBLnA==","msgKey":"sampleText","msgParam":"{\"content\":\"你好\"}"}"#
    );
}

#[test]
fn the_openapi_send_follows_the_conversation() {
    let text = OutgoingMessage::Text("你好");

    let group = group_reply().openapi_send(&text).unwrap();
    let single = single_reply().openapi_send(&text).unwrap();
    let mut anonymous = single_reply();
    anonymous.sender_staff_id = None;

    assert_eq!(group.url(), GROUP_MESSAGE_SEND_URL);
    assert_eq!(
        group,
        OpenApiSend::Group(GroupMessageSend::new(
            SAMPLE_ROBOT_CODE,
            "cidAsXSBLnA==",
            &text
        ))
    );
    assert_eq!(single.url(), BATCH_SEND_OTO_URL);
    assert_eq!(
        single,
        OpenApiSend::Single(BatchSendOto::new(SAMPLE_ROBOT_CODE, &["16650698"], &text))
    );
    assert!(single.to_json().contains(r#""userIds":["16650698"]"#));
    assert_eq!(anonymous.openapi_send(&text), None, "no userid to send to");
}

#[test]
fn openapi_responses_parse() {
    let sent: BatchSendOtoResponse = serde_json::from_str(
        r#"{"processQueryKey":"q","invalidStaffIdList":[],"flowControlledStaffIdList":["u"],"filteredStaffIdList":[]}"#,
    )
    .unwrap();

    assert_eq!(sent.process_query_key, "q");
    assert_eq!(sent.flow_controlled_staff_id_list, vec!["u".to_owned()]);
}

#[test]
fn the_access_token_request_and_response() {
    let request = AccessTokenRequest::new("dingappkey", "s3cret");
    let response: AccessTokenResponse =
        serde_json::from_str(r#"{"accessToken":"tok3n","expireIn":7200}"#).unwrap();

    assert_eq!(
        request.to_json(),
        r#"{"appKey":"dingappkey","appSecret":"s3cret"}"#
    );
    assert_eq!(response.access_token, "tok3n");
    assert_eq!(response.expire_in, 7200);
    assert!(!format!("{request:?}").contains("s3cret"));
    assert!(!format!("{response:?}").contains("tok3n"));
}

#[test]
fn a_webhook_is_usable_until_a_minute_before_it_expires() {
    let url = "https://oapi.dingtalk.com/robot/sendBySession?session=1";
    let expires = 1_690_367_502_152u64;
    let margin = WEBHOOK_SAFETY_MARGIN.as_millis() as u64;
    let usable = |now: u64| session_webhook_usable(url, expires, now, DEFAULT_WEBHOOK_HOSTS);

    assert!(usable(expires - margin - 1));
    assert!(!usable(expires - margin));
    assert!(!usable(expires));
    assert!(!usable(u64::MAX));
}

#[test]
fn the_reply_context_uses_its_webhook_only_while_usable_and_at_home() {
    let mut reply = group_reply();
    let before = 1_690_362_101_894;
    let after = 1_690_367_502_152;

    assert_eq!(
        reply.usable_webhook(before, DEFAULT_WEBHOOK_HOSTS),
        Some("https://oapi.dingtalk.com/robot/sendBySession?session=76da0c1b")
    );
    assert_eq!(reply.usable_webhook(after, DEFAULT_WEBHOOK_HOSTS), None);
    reply.session_webhook = Some("https://oapi.dingtalk.com@evil.com/robot/sendBySession".into());
    assert_eq!(reply.usable_webhook(before, DEFAULT_WEBHOOK_HOSTS), None);
    reply.session_webhook_expires_ms = None;
    assert_eq!(reply.usable_webhook(before, &["evil.com"]), None);
}

#[test]
fn the_host_allow_list_is_strict() {
    let hosts = &["oapi.dingtalk.com", "api.dingtalk.com"];

    assert!(webhook_host_allowed(
        "https://oapi.dingtalk.com/robot/sendBySession?session=1",
        hosts
    ));
    assert!(webhook_host_allowed("https://api.dingtalk.com/x", hosts));
    for url in [
        "https://oapi.dingtalk.com@evil.com/robot/sendBySession",
        "https://user:pass@oapi.dingtalk.com/robot",
        "https://oapi.dingtalk.com:443@evil.com/",
        "https://evil.com#@oapi.dingtalk.com/",
        "https://evil.com/oapi.dingtalk.com/",
        "https://xoapi.dingtalk.com/robot",
        "https://oapi.dingtalk.com.evil.com/robot",
        "http://oapi.dingtalk.com/robot",
        "//oapi.dingtalk.com/robot",
        "https://oapi.dingtalk.com\t/robot",
        "https://[::1]/robot",
        "https://127.0.0.1/robot",
    ] {
        assert!(!webhook_host_allowed(url, hosts), "{url}");
    }
}

#[test]
fn reply_contexts_hide_the_session_and_survive_a_queue() {
    let reply = group_reply();

    let shown = format!("{reply:?}");
    let queued: ReplyContext =
        serde_json::from_str(&serde_json::to_string(&reply).unwrap()).unwrap();

    assert!(!shown.contains("76da0c1b"), "{shown}");
    assert!(shown.contains("sendBySession?<redacted>"), "{shown}");
    assert_eq!(queued, reply);
}

#[test]
fn long_answers_are_cut_on_paragraphs_with_markdown_kept() {
    let paragraph = format!("**要点** {}", "钉钉消息。".repeat(60));
    let answer = vec![paragraph.clone(); 12].join("\n\n");

    let parts = PARTS.parts(&answer);

    assert!(parts.len() > 1);
    assert!(parts.iter().all(|part| part.len() <= PART_BYTES));
    assert!(parts.iter().all(|part| part.starts_with("**要点**")));
    assert_eq!(parts.join("\n\n"), answer, "cut only between paragraphs");
}

#[test]
fn titles_preview_the_first_line() {
    assert_eq!(preview_title("\n## 今天的天气\n内容"), "今天的天气");
    assert_eq!(preview_title("> 引用"), "引用");
    assert_eq!(preview_title(&"长".repeat(50)).chars().count(), 30);
    assert_eq!(preview_title(""), "");
}
