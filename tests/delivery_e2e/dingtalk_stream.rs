//! DingTalk end to end, Stream mode: the replica connects out to a fake Stream gateway with a
//! fresh ticket, ACKs each robot message once it is queued, answers pings, reconnects when
//! asked or cut off, and shows the connection in `/readyz` and `/metrics`.

use std::time::{Duration, Instant};

use botgate_dingtalk::simulator::{
    stream_callback_frame, stream_disconnect_frame, stream_ping_frame,
};
use botgate_testkit::FakeStreamGateway;
use serde_json::{json, Value};

use crate::dingtalk::{dingtalk_config, dingtalk_stack, message, wait_for_path, APP_KEY, WEBHOOK};
use crate::harness::{Replica, Stack};

const OPEN: &str = "/v1.0/gateway/connections/open";
const WAIT: Duration = Duration::from_secs(10);

/// A replica in Stream mode, connected (it is ready only once its source is); its
/// `connections/open` calls get `opens`, then tickets named `ticket-later`.
async fn stream_replica_with(
    stack: &Stack,
    gateway: &FakeStreamGateway,
    opens: Vec<(u16, Value)>,
) -> Replica {
    stack.platform.push_responses_for(OPEN, opens);
    stack
        .platform
        .respond_to(OPEN, 200, gateway.open_response("ticket-later"));
    Replica::start(dingtalk_config("a", stack, "mode = \"stream\"")).await
}

async fn stream_replica(stack: &Stack, gateway: &FakeStreamGateway) -> Replica {
    let opens = vec![
        (200, gateway.open_response("ticket-1")),
        (200, gateway.open_response("ticket-2")),
    ];
    stream_replica_with(stack, gateway, opens).await
}

/// Pushes a robot message in frame `frame_id`; returns its ACK.
async fn push_message(
    gateway: &FakeStreamGateway,
    stack: &Stack,
    frame_id: &str,
    id: &str,
) -> Value {
    let frame = stream_callback_frame(
        &message(stack, id, "你好"),
        frame_id,
        botgate::clock::unix_ms(),
    );
    gateway.push(&frame);
    gateway
        .ack_for(frame_id, WAIT)
        .await
        .expect("the frame is ACKed")
}

async fn reply_context_stored(stack: &Stack, id: &str) -> bool {
    let client = redis::Client::open(stack.redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("EXISTS")
        .arg(format!("botgate:dingtalk:shop:reply:{id}"))
        .query_async(&mut connection)
        .await
        .unwrap()
}

async fn get(url: String) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_message_is_acked_once_queued_and_answered_and_a_ping_is_answered() {
    let stack = dingtalk_stack().await;
    let gateway = FakeStreamGateway::start().await;
    let replica = stream_replica(&stack, &gateway).await;

    let ack = push_message(&gateway, &stack, "frame-1", "msg-s1").await;
    let queued_at_ack = reply_context_stored(&stack, "msg-s1").await;
    gateway.push(&stream_ping_frame(
        "ping-1",
        "opaque-1",
        botgate::clock::unix_ms(),
    ));
    let pong = gateway
        .ack_for("ping-1", WAIT)
        .await
        .expect("ping answered");

    assert_eq!(ack["code"], 200);
    assert_eq!(ack["data"], r#"{"response": null}"#);
    assert!(queued_at_ack, "the reply context was stored before the ACK");
    let sent = wait_for_path(&stack, WEBHOOK, 1).await;
    assert_eq!(sent[0].query_param("session"), Some("s-msg-s1"));
    assert_eq!(sent[0].body["text"]["content"], "echo: 你好 (history: 0)");
    assert_eq!(pong["code"], 200);
    let echoed: Value = serde_json::from_str(pong["data"].as_str().unwrap()).unwrap();
    assert_eq!(echoed, json!({"opaque": "opaque-1"}));
    let open = &stack.platform.received_on(OPEN)[0].body;
    assert_eq!(open["clientId"], APP_KEY);
    assert_eq!(
        open["subscriptions"][0]["topic"],
        "/v1.0/im/bot/messages/get"
    );
    assert_eq!(gateway.tickets(), ["ticket-1"]);
    let (_, metrics) = get(format!("{}/metrics", replica.url)).await;
    assert!(
        metrics.contains(r#"botgate_source_connected{source="dingtalk-stream:shop"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_frame_brings_a_new_ticket_and_messages_keep_flowing_once_each() {
    let stack = dingtalk_stack().await;
    let gateway = FakeStreamGateway::start().await;
    let _replica = stream_replica(&stack, &gateway).await;
    push_message(&gateway, &stack, "frame-1", "msg-before").await;

    gateway.push(&stream_disconnect_frame(
        "bye-1",
        "connection is expired",
        botgate::clock::unix_ms(),
    ));
    assert!(gateway.wait_for_connections(2, WAIT).await, "reconnected");
    let log = gateway.log();
    let second = log.iter().position(|event| event == "open 2").unwrap();
    assert!(
        !log[..second].contains(&"client closed 1".to_owned()),
        "the new connection opened while the old one still delivered: {log:?}"
    );
    let after = push_message(&gateway, &stack, "frame-2", "msg-after").await;
    // DingTalk redelivering a message already queued: ACKed, not answered again.
    let again = push_message(&gateway, &stack, "frame-3", "msg-before").await;

    assert_eq!(
        gateway.tickets(),
        ["ticket-1", "ticket-2"],
        "a fresh ticket"
    );
    assert_eq!(
        (after["code"].clone(), again["code"].clone()),
        (json!(200), json!(200))
    );
    let sent = wait_for_path(&stack, WEBHOOK, 2).await;
    let mut sessions: Vec<&str> = sent
        .iter()
        .filter_map(|s| s.query_param("session"))
        .collect();
    sessions.sort();
    assert_eq!(sessions, ["s-msg-after", "s-msg-before"]);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        stack.platform.received_on(WEBHOOK).len(),
        2,
        "each answered once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_stream_connection_through_a_failed_reconnect() {
    let stack = dingtalk_stack().await;
    let gateway = FakeStreamGateway::start().await;
    // The first reopen fails: the source backs off and tries again.
    let opens = vec![
        (200, gateway.open_response("ticket-1")),
        (500, json!({"code": "ServiceUnavailable"})),
        (200, gateway.open_response("ticket-2")),
    ];
    let replica = stream_replica_with(&stack, &gateway, opens).await;

    gateway.close();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !(seen.contains(&503) && seen.last() == Some(&200)) {
        let status = replica.readyz().await;
        if seen.last() != Some(&status) {
            seen.push(status);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert!(
        seen.contains(&503),
        "not ready while disconnected: {seen:?}"
    );
    assert_eq!(
        seen.last(),
        Some(&200),
        "ready again once reconnected: {seen:?}"
    );
    assert!(gateway.wait_for_connections(2, WAIT).await);
    assert_eq!(gateway.tickets(), ["ticket-1", "ticket-2"]);
    assert_eq!(
        stack.platform.received_on(OPEN).len(),
        3,
        "one failed open between"
    );
    let (_, readiness) = get(format!("{}/readyz", replica.url)).await;
    assert!(readiness.contains("dingtalk-stream:shop"), "{readiness}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_dingtalk_conversation_logs_no_secret_token_ticket_webhook_or_text() {
    let stack = dingtalk_stack().await;
    let gateway = FakeStreamGateway::start().await;
    stack
        .platform
        .respond_to(OPEN, 200, gateway.open_response("TICKET-SECRET-1"));
    stack.platform.respond_to(
        crate::dingtalk::TOKEN,
        200,
        json!({"accessToken": "ACCESS-TOKEN-DT", "expireIn": 7200}),
    );
    let config = dingtalk_config("a", &stack, "mode = \"stream\"");
    let logged = crate::privacy::LoggedGateway::start(&config).await;
    assert!(gateway.wait_for_connections(1, WAIT).await);
    let mut streamed = message(&stack, "msgPrivOne+x==", "我的工号是 launch-4471");
    streamed.sender_staff_id = Some("staff-private-9".to_owned());
    let frame = stream_callback_frame(&streamed, "frame-p", botgate::clock::unix_ms());
    // Over HTTP too, with an expired webhook: answered through the OpenAPI with the token.
    let mut late = message(&stack, "msgPrivTwo+x==", "请查工资条 0099");
    late.sender_staff_id = Some("staff-private-9".to_owned());
    let body = late.to_json(botgate::clock::unix_ms() - 2 * 3600 * 1000);
    let signed = crate::dingtalk::robot().sign_body(&body, botgate::clock::unix_ms());

    gateway.push(&frame);
    let mut request = reqwest::Client::new().post(format!("{}/dingtalk/shop", logged.url));
    for (name, value) in &signed.headers {
        request = request.header(name, value);
    }
    let status = request.body(signed.body).send().await.unwrap().status();
    assert_eq!(status, 200);
    assert!(gateway.ack_for("frame-p", WAIT).await.is_some());
    wait_for_path(&stack, WEBHOOK, 1).await;
    wait_for_path(&stack, "/v1.0/robot/oToMessages/batchSend", 1).await;
    let logs = logged.stop().await.join("\n");

    assert!(logs.contains("DingTalk Stream connected"), "{logs}");
    for secret in [
        "e2e-dingtalk-app-secret",
        "ACCESS-TOKEN-DT",
        "TICKET-SECRET-1",
        "session=s-msgPriv",
        "launch-4471",
        "0099",
        "staff-private-9",
        // DingTalk's msgIds (base64-like) are logged only as keyed hashes.
        "msgPriv",
    ] {
        assert!(!logs.contains(secret), "the logs show {secret}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_after_it_was_up_is_reopened_without_the_earlier_backoff() {
    let stack = dingtalk_stack().await;
    let gateway = FakeStreamGateway::start().await;
    // One failed reopen doubles the backoff; the connection after it is healthy.
    let opens = vec![
        (200, gateway.open_response("ticket-1")),
        (500, json!({"code": "ServiceUnavailable"})),
        (200, gateway.open_response("ticket-2")),
    ];
    let _replica = stream_replica_with(&stack, &gateway, opens).await;
    gateway.close();
    assert!(gateway.wait_for_connections(2, WAIT).await);

    gateway.close();
    let lost = Instant::now();
    assert!(gateway.wait_for_connections(3, WAIT).await);
    // The first backoff is 1–1.5 s; the doubled ones after the failure would be 4–6 s.
    assert!(
        lost.elapsed() < Duration::from_secs(3),
        "reopened after {:?}",
        lost.elapsed()
    );
}
