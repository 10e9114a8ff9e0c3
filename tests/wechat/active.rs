//! Active mode: `success` at once, the answer through the customer-service API with the shared
//! stable token, typing while generating, at most five parts, and the documented failure codes.

use std::time::{Duration, Instant};

use botgate_testkit::{Answer, FakeBailian, FakePlatform, Received, RedisServer};
use botgate_wechat::CallbackMode;
use serde_json::json;

use crate::harness::{msg_id, settings, text, Gateway};

const SEND: &str = "/cgi-bin/message/custom/send";
const TOKEN: &str = "/cgi-bin/stable_token";
const TYPING: &str = "/cgi-bin/message/custom/typing";

fn active(platform: &FakePlatform) -> String {
    format!(
        "reply_mode = \"active\"\napp_secret = \"wechat-secret\"\napi_base = \"{}\"",
        platform.url()
    )
}

async fn wechat_api() -> FakePlatform {
    let platform = FakePlatform::start().await;
    platform.respond_to(
        TOKEN,
        200,
        json!({"access_token": "T1", "expires_in": 7200}),
    );
    platform
}

/// Waits (on the fake's own signal) until `path` has received `n` requests.
async fn wait_on(platform: &FakePlatform, path: &str, n: usize, within: Duration) -> Vec<Received> {
    let deadline = Instant::now() + within;
    loop {
        let got = platform.received_on(path);
        if got.len() >= n || Instant::now() >= deadline {
            return got;
        }
        let total = platform.received().len();
        platform
            .wait_for(total + 1, deadline - Instant::now())
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledges_at_once_then_sends_with_the_shared_token_and_typing() {
    let fake = FakeBailian::start().await;
    fake.set_delay(Duration::from_millis(300));
    let api = wechat_api().await;
    let gateway = Gateway::start(settings(&fake, None, &active(&api))).await;

    let delivery = gateway
        .wechat(CallbackMode::Safe)
        .send("o-active", &text(msg_id(100), "你好"))
        .await
        .unwrap();
    let sends = wait_on(&api, SEND, 1, Duration::from_secs(10)).await;

    assert_eq!(
        (delivery.reply, delivery.attempts),
        (None, 1),
        "acknowledged with success at once"
    );
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].query_param("access_token"), Some("T1"));
    assert_eq!(
        sends[0].body,
        json!({"touser": "o-active", "msgtype": "text", "text": {"content": "echo: 你好 (history: 0)"}})
    );
    let typing = api.received_on(TYPING);
    assert_eq!(
        typing[0].body,
        json!({"touser": "o-active", "command": "Typing"})
    );
    let token_requests = api.received_on(TOKEN);
    assert_eq!(token_requests.len(), 1, "one token, cached and shared");
    assert_eq!(
        token_requests[0].body["force_refresh"],
        json!(false),
        "stable_token in normal mode"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_is_refreshed_once_and_the_send_retried() {
    let fake = FakeBailian::start().await;
    let api = FakePlatform::start().await;
    api.push_responses_for(
        TOKEN,
        [
            (200, json!({"access_token": "T1", "expires_in": 7200})),
            (200, json!({"access_token": "T2", "expires_in": 7200})),
        ],
    );
    api.push_responses_for(
        SEND,
        [(
            200,
            json!({"errcode": 40001, "errmsg": "invalid credential"}),
        )],
    );
    let gateway = Gateway::start(settings(&fake, None, &active(&api))).await;

    gateway
        .wechat(CallbackMode::Safe)
        .send("o-token", &text(msg_id(101), "hi"))
        .await
        .unwrap();
    let sends = wait_on(&api, SEND, 2, Duration::from_secs(10)).await;

    let tokens: Vec<_> = sends
        .iter()
        .map(|send| {
            send.query_param("access_token")
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        tokens,
        ["T1", "T2"],
        "invalidated only the failed token, fetched a new one, retried"
    );
    api.wait_for(api.received().len() + 1, Duration::from_millis(800))
        .await;
    assert_eq!(api.received_on(SEND).len(), 2, "retried once, then done");
    let metrics = reqwest::get(format!("{}/metrics", gateway.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"botgate_token_refreshes_total{platform="wechat"} 2"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_answers_are_split_into_at_most_five_messages() {
    let fake = FakeBailian::start().await;
    fake.set_answer(Answer::Fixed("一段很长的回答。".repeat(1000)));
    let api = wechat_api().await;
    let gateway = Gateway::start(settings(&fake, None, &active(&api))).await;

    gateway
        .wechat(CallbackMode::Safe)
        .send("o-split", &text(msg_id(102), "详细"))
        .await
        .unwrap();
    let sends = wait_on(&api, SEND, 5, Duration::from_secs(10)).await;
    api.wait_for(api.received().len() + 1, Duration::from_millis(800))
        .await;

    assert_eq!(sends.len(), 5);
    assert_eq!(
        api.received_on(SEND).len(),
        5,
        "never a sixth message (45047)"
    );
    for send in &sends {
        assert!(send.body["text"]["content"].as_str().unwrap().len() <= 2000);
    }
    assert!(sends[4].body["text"]["content"]
        .as_str()
        .unwrap()
        .ends_with("其余部分已省略）"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_closed_is_not_retried_and_no_permission_falls_back_to_passive() {
    let fake = FakeBailian::start().await;
    let api = wechat_api().await;
    api.push_responses_for(
        SEND,
        [
            (
                200,
                json!({"errcode": 45015, "errmsg": "response out of time limit"}),
            ),
            (200, json!({"errcode": 48001, "errmsg": "api unauthorized"})),
        ],
    );
    let gateway = Gateway::start(settings(&fake, None, &active(&api))).await;
    let wechat = gateway.wechat(CallbackMode::Safe);

    wechat
        .send("o-late", &text(msg_id(103), "还在吗"))
        .await
        .unwrap();
    wait_on(&api, SEND, 1, Duration::from_secs(10)).await;
    wechat
        .send("o-denied", &text(msg_id(104), "第一问"))
        .await
        .unwrap();
    wait_on(&api, SEND, 2, Duration::from_secs(10)).await;
    let metrics = reqwest::get(format!("{}/metrics", gateway.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let pulled = pull_until_answered(&wechat, "o-denied").await;

    assert_eq!(
        api.received_on(SEND).len(),
        2,
        "45015 is permanent: no retry"
    );
    assert!(
        metrics.contains(
            r#"botgate_deliveries_total{platform="wechat",outcome="failed",code="45015"} 1"#
        ),
        "{metrics}"
    );
    assert_eq!(
        pulled.as_deref(),
        Some("echo: 第一问 (history: 0)"),
        "after 48001 the answer waits for the next message"
    );
}

/// After a 48001 fallback the bot answers passively; the user's next message pulls the answer.
async fn pull_until_answered(
    wechat: &botgate::simulate::WechatSimulator,
    user: &str,
) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 200;
    while Instant::now() < deadline {
        n += 1;
        let delivery = wechat.send(user, &text(msg_id(n), "在吗")).await.unwrap();
        if delivery.reply.is_some() {
            return delivery.reply;
        }
    }
    None
}

/// A long answer that falls back after 48001 waits in parts that each ask for a reply, as a
/// passive answer's parts do: the user knows there is more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_answer_falling_back_is_pulled_in_parts_that_ask_for_more() {
    let fake = FakeBailian::start().await;
    let paragraph = "这是一个很长的回答。".repeat(60);
    let answer = format!("{paragraph}\n\n{paragraph}\n\n{paragraph}");
    fake.set_answer(Answer::Fixed(answer.clone()));
    let api = wechat_api().await;
    api.push_responses_for(
        SEND,
        [(200, json!({"errcode": 48001, "errmsg": "api unauthorized"}))],
    );
    let redis = RedisServer::start().await;
    let gateway = Gateway::start(settings(&fake, Some(&redis), &active(&api))).await;
    let wechat = gateway.wechat(CallbackMode::Safe);

    wechat
        .send("o-fallback", &text(msg_id(300), "详细说说"))
        .await
        .unwrap();
    wait_on(&api, SEND, 1, Duration::from_secs(10)).await;
    // The parts are queued just after WeChat's refusal; a message before that is a question.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stored: Option<String> = redis::cmd("GET")
            .arg("botgate:wechat:box:shop:o-fallback")
            .query_async(&mut connection)
            .await
            .unwrap();
        if stored.is_some_and(|stored| stored.contains(r#""p":true"#)) {
            break;
        }
        assert!(Instant::now() < deadline, "the answer never fell back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut parts = vec![pull_until_answered(&wechat, "o-fallback").await.unwrap()];
    for n in 0..10 {
        if !parts.last().unwrap().contains("回复任意文字继续") {
            break;
        }
        let next = wechat
            .send("o-fallback", &text(msg_id(310 + n), "继续"))
            .await
            .unwrap();
        parts.push(next.reply.unwrap_or_default());
    }

    assert!(parts.len() >= 2, "{parts:?}");
    let last = parts.len() - 1;
    assert!(parts[..last]
        .iter()
        .all(|part| part.ends_with("（未完待续，回复任意文字继续）")));
    let strip = |text: &str| {
        text.replace("（未完待续，回复任意文字继续）", "")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
    };
    assert_eq!(strip(&parts.concat()), strip(&answer), "nothing lost");
    assert_eq!(fake.calls(), 1);
}
