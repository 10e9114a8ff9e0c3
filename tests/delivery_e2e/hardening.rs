//! The acknowledge-then-deliver guarantees under awkward timing and faults: a frozen worker,
//! a reply lost with its connection, one busy conversation, and what Redis keeps afterwards.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use botgate_testkit::{Answer, DropProxy};

use crate::harness::{config, deliveries, post, post_until_accepted, stack, Replica, Stack};

/// A replica whose webhook answers are cut into parts of `part_bytes`.
fn replica_config(stack: &Stack, name: &str, part_bytes: usize) -> String {
    config(
        name,
        &stack.fake,
        &stack.redis,
        &stack.platform,
        &format!("max_part_bytes = {part_bytes}"),
    )
}

/// A replica whose Redis traffic goes through a [`DropProxy`], warmed up.
async fn proxied(stack: &Stack) -> (DropProxy, Replica, reqwest::Client) {
    proxied_with_parts_of(stack, 4000).await
}

async fn proxied_with_parts_of(
    stack: &Stack,
    part_bytes: usize,
) -> (DropProxy, Replica, reqwest::Client) {
    let proxy = DropProxy::start(stack.redis.port()).await;
    let replica = Replica::start(
        replica_config(stack, "replica-a", part_bytes).replace(&stack.redis.url(), &proxy.url()),
    )
    .await;
    let client = reqwest::Client::new();
    warm_up(stack, &client, &replica).await;
    (proxy, replica, client)
}

/// One message through the replica, so Redis holds every script before a test drops a
/// connection (the first call of a script is answered NOSCRIPT and did not run).
async fn warm_up(stack: &Stack, client: &reqwest::Client, replica: &Replica) {
    let before = stack.platform.received().len();
    post_until_accepted(client, replica, "c-warm-up", "warm-up", "热身").await;
    assert!(
        stack
            .platform
            .wait_for(before + 1, Duration::from_secs(10))
            .await
    );
}

/// The zombie worker: replica A is frozen (SIGSTOP, like a stall of the process or of its
/// Redis link) past the visibility timeout while its LLM call runs; replica B takes the job
/// over and calls the LLM again, which answers differently. A thaws while B's parts are going
/// out (the platform answers slowly): it must neither store nor send its own answer, so
/// exactly one coherent answer reaches the user, each part once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_frozen_past_the_visibility_timeout_stops_and_one_answer_goes_out() {
    let stack = stack().await;
    let story = "一二三四五六七八九十".repeat(6);
    stack.fake.set_answer(Answer::Numbered(story.clone()));
    stack.fake.set_delay(Duration::from_millis(1500));
    stack.platform.set_delay(Duration::from_millis(700));
    let a = Replica::start(replica_config(&stack, "replica-a", 64)).await;
    let client = reqwest::Client::new();
    assert_eq!(
        post(&client, &a, "c-zombie", "m-zombie", "讲个故事").await,
        202
    );
    assert!(
        stack.fake.wait_for_calls(1, Duration::from_secs(10)).await,
        "replica A called the LLM"
    );
    a.signal("STOP");
    let b = Replica::start(replica_config(&stack, "replica-b", 64)).await;
    assert!(
        stack.platform.wait_for(1, Duration::from_secs(30)).await,
        "replica B took the job over and is sending its answer"
    );
    a.signal("CONT");

    let answer_parts = 3;
    let settled = stack
        .platform
        .settle(
            answer_parts,
            Duration::from_secs(20),
            Duration::from_secs(4),
        )
        .await;
    assert_eq!(
        settled, answer_parts,
        "the answer went out, no part twice and no second answer"
    );
    let texts: Vec<String> = deliveries(&stack.platform)
        .into_iter()
        .map(|(_, _, text)| text)
        .collect();
    assert_eq!(
        texts.concat(),
        format!("{story} #2"),
        "B's answer, whole and in order: {texts:?}"
    );
    assert_eq!(stack.fake.calls(), 2);
    drop(b);
}

/// The claim and the job are one step: a connection dropped after Redis claimed the message
/// (its reply lost) must not leave a claim without a job, or the platform's retry is told
/// "duplicate" and the message is never answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_reply_was_lost_still_has_its_job() {
    let stack = stack().await;
    let (proxy, replica, client) = proxied(&stack).await;
    proxy.arm(":claim:shop:webhook:m-claim");

    let status = post(&client, &replica, "c-claim", "m-claim", "你好").await;
    let retry = post(&client, &replica, "c-claim", "m-claim", "你好").await;

    assert_eq!(
        proxy.fired(),
        1,
        "the connection was dropped after the claim"
    );
    assert_eq!(
        proxy.forwarded(":claim:shop:webhook:m-claim"),
        3,
        "the claim ran twice for the first post, once for the retry"
    );
    assert!((200..300).contains(&status), "accepted: {status}");
    assert_eq!(retry, 200, "the platform's retry is a duplicate");
    assert!(
        stack.platform.wait_for(2, Duration::from_secs(10)).await,
        "the message is answered (after the warm-up's)"
    );
    assert!(!stack.platform.wait_for(3, Duration::from_secs(2)).await);
    assert_eq!(stack.fake.calls(), 2, "the warm-up's call and this one's");
}

/// A part went out, and its sent-marker write and the resend of it both lost their replies
/// with their connections: the worker takes the write as failed and leaves the job, which is
/// reclaimed after the visibility timeout. The marker did run, so the reclaim skips that part
/// and sends only the rest: no part goes out twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sent_part_whose_marker_reply_was_lost_is_not_sent_again() {
    let stack = stack().await;
    let (proxy, replica, client) = proxied_with_parts_of(&stack, 64).await;
    let story = "一二三四五六七八九十".repeat(6);
    stack.fake.set_answer(Answer::Numbered(story.clone()));
    // The first part's marker write, and the resend after the dropped connection.
    proxy.arm(b"$4\r\nsent\r\n".to_vec());
    proxy.arm(b"$4\r\nsent\r\n".to_vec());

    post_until_accepted(&client, &replica, "c-marker", "m-marker", "讲个故事").await;

    let parts = 1 + 3;
    let settled = stack
        .platform
        .settle(parts, Duration::from_secs(10), Duration::from_secs(4))
        .await;
    assert_eq!(
        settled, parts,
        "the reclaimed job sent the rest, and no part went out twice"
    );
    assert_eq!(proxy.fired(), 2, "both marker writes were dropped");
    let texts: Vec<String> = deliveries(&stack.platform)
        .into_iter()
        .filter(|(conversation, _, _)| conversation == "c-marker")
        .map(|(_, _, text)| text)
        .collect();
    assert_eq!(texts.concat(), format!("{story} #2"), "{texts:?}");
}

/// A job waiting for its conversation's turn holds no worker: with four workers, ten queued
/// messages of one conversation with a 2 s LLM do not hold up another conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_busy_conversation_does_not_starve_the_others() {
    let stack = stack().await;
    stack.fake.set_delay(Duration::from_secs(2));
    let replica = Replica::start(
        replica_config(&stack, "replica-a", 4000).replace("workers = 16", "workers = 4"),
    )
    .await;
    let client = reqwest::Client::new();
    for i in 0..10 {
        post_until_accepted(
            &client,
            &replica,
            "c-busy",
            &format!("busy-{i}"),
            &format!("{i}"),
        )
        .await;
    }

    let sent = Instant::now();
    post_until_accepted(&client, &replica, "c-other", "other-0", "hello").await;
    let answered = loop {
        if deliveries(&stack.platform)
            .iter()
            .any(|(conversation, _, _)| conversation == "c-other")
        {
            break sent.elapsed();
        }
        assert!(sent.elapsed() < Duration::from_secs(30), "never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    assert!(
        answered < Duration::from_secs(5),
        "the other conversation waited {answered:?}"
    );
    assert!(stack.platform.wait_for(11, Duration::from_secs(40)).await);
    let busy: Vec<String> = deliveries(&stack.platform)
        .into_iter()
        .filter(|(conversation, _, _)| conversation == "c-busy")
        .map(|(_, message, _)| message)
        .collect();
    let expected: Vec<String> = (0..10).map(|i| format!("busy-{i}")).collect();
    assert_eq!(busy, expected, "the busy conversation in order");
}

/// Per-message state goes when the message is done: after 1,000 messages over 20
/// conversations, Redis holds one key per message (its dedup claim, needed for platform
/// retries until `dedup_ttl_secs`) and a few per conversation (its memory), not the replies
/// and sent-markers of every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout)] // the scenario reports the counts it checked
async fn a_thousand_messages_leave_a_bounded_number_of_keys() {
    let stack = stack().await;
    let replica = Replica::start(replica_config(&stack, "replica-a", 4000)).await;
    let client = reqwest::Client::new();
    const CONVERSATIONS: usize = 20;
    const MESSAGES: usize = 1000;

    let senders = (0..CONVERSATIONS).map(|c| {
        let (client, replica) = (&client, &replica);
        async move {
            for i in 0..MESSAGES / CONVERSATIONS {
                post_until_accepted(
                    client,
                    replica,
                    &format!("k-{c}"),
                    &format!("k-{c}-{i}"),
                    "hi",
                )
                .await;
            }
        }
    });
    futures_util::future::join_all(senders).await;
    assert!(
        stack
            .platform
            .wait_for(MESSAGES, Duration::from_secs(120))
            .await
    );
    // The last acknowledgement and its cleanup follow the last delivery closely.
    let redis = redis::Client::open(stack.redis.url()).unwrap();
    let mut connection = redis.get_multiplexed_async_connection().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut kinds: HashMap<String, usize> = HashMap::new();
    loop {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut connection)
            .await
            .unwrap();
        kinds.clear();
        for key in &keys {
            let kind = key.split(':').nth(1).unwrap_or_default().to_owned();
            *kinds.entry(kind).or_default() += 1;
        }
        let per_message = kinds.get("reply").copied().unwrap_or(0);
        if per_message == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("keys left after {MESSAGES} messages: {kinds:?}");
    let claims = kinds.remove("claim").unwrap_or(0);
    let others: usize = kinds.values().sum();
    assert_eq!(claims, MESSAGES, "one dedup claim per message");
    assert!(
        others <= CONVERSATIONS * 2 + 10,
        "beyond the claims, a few keys per conversation: {kinds:?}"
    );
}

/// A connection dropped after Redis stored a reply with its memory turn: the resent script
/// finds its reply stored and its turn last, and adds neither again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_reply_store_remembers_the_turn_once() {
    let stack = stack().await;
    let (proxy, replica, client) = proxied(&stack).await;
    proxy.arm("echo: 第一句".as_bytes());

    post_until_accepted(&client, &replica, "c-replay", "replay-1", "第一句").await;
    assert!(stack.platform.wait_for(2, Duration::from_secs(10)).await);
    post_until_accepted(&client, &replica, "c-replay", "replay-2", "第二句").await;
    assert!(stack.platform.wait_for(3, Duration::from_secs(10)).await);

    assert_eq!(proxy.fired(), 1);
    assert_eq!(
        proxy.forwarded("echo: 第一句"),
        2,
        "the reply script ran twice"
    );
    let texts: Vec<String> = deliveries(&stack.platform)
        .into_iter()
        .filter(|(conversation, _, _)| conversation == "c-replay")
        .map(|(_, _, text)| text)
        .collect();
    assert_eq!(
        texts,
        ["echo: 第一句 (history: 0)", "echo: 第二句 (history: 2)"],
        "one turn in memory, and one delivery each"
    );
}
