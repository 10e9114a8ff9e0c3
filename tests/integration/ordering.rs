//! Ordering: one conversation answers its messages one at a time in arrival order; conversations run in parallel.

use std::time::{Duration, Instant};

use crate::common::{core, echo, text, Extra, StoreKind, BOT};
use botgate::core::ReplyKind;
use botgate_contract::InboundMessage;
use futures_util::future::join_all;

const BURST: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_in_one_conversation_is_answered_in_order_embedded() {
    burst_in_one_conversation(StoreKind::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_in_one_conversation_is_answered_in_order_redis() {
    burst_in_one_conversation(StoreKind::Redis).await;
}

/// 20 messages at once into one conversation. `join_all` polls its futures in order, so message
/// i reaches the conversation's lock i-th; each must see exactly the i turns before it.
async fn burst_in_one_conversation(store: StoreKind) {
    let core = core(store, Extra::default()).await;
    core.fake.set_delay(Duration::from_millis(20));
    let messages: Vec<InboundMessage> = (0..BURST)
        .map(|index| text("alice", &format!("第{index}条")))
        .collect();

    let replies = join_all(
        messages
            .iter()
            .map(|message| core.conversations.handle(BOT, message, None)),
    )
    .await;

    for (index, reply) in replies.into_iter().enumerate() {
        let reply = reply
            .expect("the core handles the message")
            .expect("the message gets a reply");
        assert_eq!(reply.kind, ReplyKind::Answer);
        // Two history messages (user + assistant) per earlier turn.
        assert_eq!(reply.text, echo(&format!("第{index}条"), 2 * index));
    }
    let asked: Vec<String> = core
        .fake
        .requests()
        .iter()
        .map(|request| last_user_content(&request.body))
        .collect();
    let expected: Vec<String> = (0..BURST).map(|index| format!("第{index}条")).collect();
    assert_eq!(asked, expected, "one call at a time, in arrival order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_conversations_are_answered_concurrently() {
    const CONVERSATIONS: usize = 10;
    const DELAY: Duration = Duration::from_millis(300);
    let core = core(StoreKind::Embedded, Extra::default()).await;
    core.fake.set_delay(DELAY);
    let messages: Vec<InboundMessage> = (0..CONVERSATIONS)
        .map(|index| text(&format!("user-{index}"), "你好"))
        .collect();

    let started = Instant::now();
    let replies = join_all(
        messages
            .iter()
            .map(|message| core.conversations.handle(BOT, message, None)),
    )
    .await;
    let elapsed = started.elapsed();

    for reply in replies {
        let reply = reply
            .expect("the core handles the message")
            .expect("the message gets a reply");
        assert_eq!(reply.text, echo("你好", 0));
    }
    // One at a time would take 10 × 300 ms = 3 s.
    assert!(
        elapsed < Duration::from_millis(1500),
        "10 conversations took {elapsed:?}: they were serialised"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_conversation_does_not_hold_up_another() {
    let core = core(StoreKind::Embedded, Extra::default()).await;
    core.fake.set_delay(Duration::from_millis(300));
    let slow: Vec<InboundMessage> = (0..5)
        .map(|index| text("busy", &format!("第{index}条")))
        .collect();
    let other = text("quiet", "你好");

    let started = Instant::now();
    let busy = join_all(
        slow.iter()
            .map(|message| core.conversations.handle(BOT, message, None)),
    );
    let quiet = async {
        let reply = core.conversations.handle(BOT, &other, None).await;
        (reply, started.elapsed())
    };
    let (busy, (quiet, quiet_elapsed)) = tokio::join!(busy, quiet);

    assert!(busy.iter().all(Result::is_ok));
    let quiet = quiet
        .expect("the core handles the message")
        .expect("the message gets a reply");
    assert_eq!(quiet.text, echo("你好", 0));
    // Behind the busy conversation's five answers it would wait at least 1.5 s.
    assert!(
        quiet_elapsed < Duration::from_millis(1000),
        "the quiet conversation waited {quiet_elapsed:?}"
    );
}

/// The content of the last user message of a native Bailian request body.
fn last_user_content(body: &serde_json::Value) -> String {
    body["input"]["messages"]
        .as_array()
        .and_then(|messages| {
            messages
                .iter()
                .rev()
                .find(|message| message["role"] == "user")
        })
        .and_then(|message| message["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}
