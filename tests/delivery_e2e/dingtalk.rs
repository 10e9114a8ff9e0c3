//! DingTalk end to end, HTTP mode: real replicas, real Redis, the fake Bailian and a fake
//! DingTalk (session webhook receiver and robot OpenAPI on one loopback origin, allowed by the
//! bot's `session_webhook_hosts`).

use std::time::Duration;

use botgate_dingtalk::{DingtalkRobot, SimulatedMessage};
use botgate_testkit::{FakePlatform, Received};
use serde_json::{json, Value};

use crate::harness::{config, stack, Replica, Stack};

pub const APP_KEY: &str = "dinge2eappkey";
pub const APP_SECRET: &str = "e2e-dingtalk-app-secret";
pub const WEBHOOK: &str = "/robot/sendBySession";
pub const TOKEN: &str = "/v1.0/oauth2/accessToken";
const BATCH_SEND: &str = "/v1.0/robot/oToMessages/batchSend";

pub fn robot() -> DingtalkRobot {
    DingtalkRobot::new(APP_SECRET)
}

pub fn dingtalk_config(name: &str, stack: &Stack, extra: &str) -> String {
    config(
        name,
        &stack.fake,
        &stack.redis,
        &stack.platform,
        &dingtalk_table(&stack.platform, extra),
    )
}

/// The bot's `[bots.shop.dingtalk]` table, its APIs and session webhooks on `platform`.
pub fn dingtalk_table(platform: &FakePlatform, extra: &str) -> String {
    format!(
        r#"
[bots.shop.dingtalk]
app_key = "{APP_KEY}"
app_secret = "{APP_SECRET}"
api_base = "{api}"
session_webhook_hosts = ["oapi.dingtalk.com", "{api}"]
{extra}
"#,
        api = platform.url()
    )
}

pub async fn dingtalk_stack() -> Stack {
    let stack = stack().await;
    stack
        .platform
        .respond_to(TOKEN, 200, json!({"accessToken": "T1", "expireIn": 7200}));
    stack
}

/// A message from `staff` with id `id`, whose session webhook is the fake's.
pub fn message(stack: &Stack, id: &str, text: &str) -> SimulatedMessage {
    message_via(&stack.platform, id, text)
}

/// [`message`] with its session webhook on `platform`.
pub fn message_via(platform: &FakePlatform, id: &str, text: &str) -> SimulatedMessage {
    let mut message = SimulatedMessage::new(id, text)
        .with_session_webhook(&format!("{}{WEBHOOK}?session=s-{id}", platform.url()));
    message.robot_code = APP_KEY.to_owned();
    message
}

/// Posts `body` signed at `now` as DingTalk does; returns the status and body.
async fn post_body(replica: &Replica, body: &str) -> (u16, String) {
    let signed = robot().sign_body(body, botgate::clock::unix_ms());
    post_signed(replica, signed).await
}

async fn post_signed(replica: &Replica, signed: botgate_dingtalk::SignedRequest) -> (u16, String) {
    let mut request = reqwest::Client::new().post(format!("{}/dingtalk/shop", replica.url));
    for (name, value) in &signed.headers {
        request = request.header(name, value);
    }
    let response = request.body(signed.body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

pub async fn post(replica: &Replica, message: &SimulatedMessage) -> (u16, String) {
    post_body(replica, &message.to_json(botgate::clock::unix_ms())).await
}

pub async fn wait_for_path(stack: &Stack, path: &str, n: usize) -> Vec<Received> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while stack.platform.received_on(path).len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{n} requests on {path}; got {:?}",
            stack.platform.received()
        );
        stack
            .platform
            .wait_for(
                stack.platform.received().len() + 1,
                Duration::from_millis(200),
            )
            .await;
    }
    stack.platform.received_on(path)
}

fn header<'a>(received: &'a Received, name: &str) -> Option<&'a str> {
    received
        .headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_to_one_message_is_answered_through_its_session_webhook() {
    let stack = dingtalk_stack().await;
    let replica = Replica::start(dingtalk_config("a", &stack, "")).await;

    let answer = post(&replica, &message(&stack, "msg-1to1", "  你好 ")).await;

    assert_eq!(
        answer,
        (200, String::new()),
        "acknowledged with an empty 200"
    );
    let sent = wait_for_path(&stack, WEBHOOK, 1).await;
    assert_eq!(sent[0].query_param("session"), Some("s-msg-1to1"));
    assert_eq!(
        sent[0].body,
        json!({"msgtype": "text", "text": {"content": "echo: 你好 (history: 0)"}}),
        "text, trimmed question, no @ in a one-to-one chat"
    );
    assert!(stack.platform.received_on(BATCH_SEND).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_mention_is_answered_mentioning_the_sender_and_a_group_message_without_one_is_not()
{
    let stack = dingtalk_stack().await;
    let replica = Replica::start(dingtalk_config("a", &stack, "reply = \"markdown\"")).await;
    let mut unmentioned: Value = serde_json::from_str(
        &message(&stack, "msg-quiet", "闲聊")
            .in_group()
            .to_json(botgate::clock::unix_ms()),
    )
    .unwrap();
    unmentioned["isInAtList"] = json!(false);

    let quiet = post_body(&replica, &unmentioned.to_string()).await;
    let mentioned = post(
        &replica,
        &message(&stack, "msg-group", " 价格？").in_group(),
    )
    .await;

    assert_eq!(quiet.0, 200, "acknowledged, so DingTalk does not retry");
    assert_eq!(mentioned.0, 200);
    let sent = wait_for_path(&stack, WEBHOOK, 1).await;
    assert_eq!(sent[0].body["msgtype"], "markdown");
    assert_eq!(
        sent[0].body["markdown"]["text"],
        "echo: 价格？ (history: 0)"
    );
    assert!(!sent[0].body["markdown"]["title"]
        .as_str()
        .unwrap()
        .is_empty());
    assert_eq!(
        sent[0].body["at"],
        json!({"atUserIds": ["simulated-staff"], "isAtAll": false})
    );
    assert_eq!(sent[0].query_param("session"), Some("s-msg-group"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        stack.fake.calls(),
        1,
        "the message without @ never reached the LLM"
    );
    assert_eq!(stack.platform.received_on(WEBHOOK).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_webhook_falls_to_the_openapi_with_a_token_refreshed_once() {
    let stack = dingtalk_stack().await;
    let replica = Replica::start(dingtalk_config("a", &stack, "")).await;
    stack.platform.push_responses_for(
        TOKEN,
        [
            (200, json!({"accessToken": "T1", "expireIn": 7200})),
            (200, json!({"accessToken": "T2", "expireIn": 7200})),
        ],
    );
    stack.platform.push_responses_for(
        BATCH_SEND,
        [(
            401,
            json!({"code": "InvalidAuthentication", "message": "token expired"}),
        )],
    );
    let now = botgate::clock::unix_ms();
    // Created two hours ago: its session webhook expired 30 minutes ago.
    let old = message(&stack, "msg-late", "还在吗").to_json(now - 2 * 3600 * 1000);

    assert_eq!(post_body(&replica, &old).await.0, 200);

    let sends = wait_for_path(&stack, BATCH_SEND, 2).await;
    assert_eq!(header(&sends[0], "x-acs-dingtalk-access-token"), Some("T1"));
    assert_eq!(header(&sends[1], "x-acs-dingtalk-access-token"), Some("T2"));
    let body = &sends[1].body;
    assert_eq!(body["robotCode"], APP_KEY);
    assert_eq!(body["userIds"], json!(["simulated-staff"]));
    assert_eq!(body["msgKey"], "sampleText");
    let param: Value = serde_json::from_str(body["msgParam"].as_str().unwrap()).unwrap();
    assert_eq!(param["content"], "echo: 还在吗 (history: 0)");
    let token = &stack.platform.received_on(TOKEN)[0].body;
    assert_eq!(token["appKey"], APP_KEY);
    assert!(
        stack.platform.received_on(WEBHOOK).is_empty(),
        "never the expired webhook"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_sign_is_refused_before_the_llm() {
    let stack = dingtalk_stack().await;
    let replica = Replica::start(dingtalk_config("a", &stack, "")).await;
    let now = botgate::clock::unix_ms();
    let body = message(&stack, "msg-forged", "hi").to_json(now);
    let forged = DingtalkRobot::new("not-the-secret").sign_body(&body, now);
    let stale = robot().sign_body(&body, now - 3600 * 1000 - 60_000);

    assert_eq!(post_signed(&replica, forged).await.0, 401);
    assert_eq!(post_signed(&replica, stale).await.0, 401);
    // A genuine message afterwards is the signal that the refused ones are not queued.
    assert_eq!(
        post(&replica, &message(&stack, "msg-real", "hi")).await.0,
        200
    );
    let sent = wait_for_path(&stack, WEBHOOK, 1).await;
    assert_eq!(sent[0].query_param("session"), Some("s-msg-real"));
    assert_eq!(stack.fake.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_message_is_answered_once_across_two_replicas() {
    let stack = dingtalk_stack().await;
    let a = Replica::start(dingtalk_config("a", &stack, "")).await;
    let b = Replica::start(dingtalk_config("b", &stack, "")).await;
    let retried = message(&stack, "msg-retried", "一次就好");

    let (first, second) = tokio::join!(post(&a, &retried), post(&b, &retried));

    assert_eq!((first.0, second.0), (200, 200), "both acknowledged");
    let sent = wait_for_path(&stack, WEBHOOK, 1).await;
    assert_eq!(
        sent[0].body["text"]["content"],
        "echo: 一次就好 (history: 0)"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        stack.platform.received_on(WEBHOOK).len(),
        1,
        "answered once"
    );
    assert_eq!(stack.fake.calls(), 1);
}

/// `botgate simulate dingtalk` against a replica that allows the simulator's webhook origin.
async fn simulate(stack: &Stack, group: bool) -> (String, String) {
    let webhook = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = dingtalk_config("sim", stack, "").replace(
        "session_webhook_hosts = [\"oapi.dingtalk.com\"",
        &format!("session_webhook_hosts = [\"http://{webhook}\""),
    );
    let replica = Replica::start(config.clone()).await;
    let mut args = vec![
        "simulate",
        "dingtalk",
        "--bot",
        "shop",
        "--text",
        "你好",
        "--url",
        &replica.url,
    ];
    if group {
        args.push("--group");
    }
    let output = crate::harness::run_command(&config, &args).await;
    (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_dingtalk_prints_the_answer_one_to_one_and_in_a_group() {
    let stack = dingtalk_stack().await;

    let (single, _) = simulate(&stack, false).await;
    let (group, mentions) = simulate(&stack, true).await;

    assert_eq!(single, "echo: 你好 (history: 0)\n");
    assert_eq!(group, "echo: 你好 (history: 0)\n");
    assert!(mentions.contains("@simulated-staff"), "{mentions}");
}
