//! The delivery guarantees, each scenario with two replicas on one Redis.

use std::collections::HashMap;
use std::time::Duration;

use botgate_testkit::{FakeBailian, FakePlatform};

use crate::harness::{config, deliveries, post, post_until_accepted, stack, Replica, Stack};

async fn replicas(stack: &Stack) -> (Replica, Replica) {
    let a = Replica::start(config(
        "replica-a",
        &stack.fake,
        &stack.redis,
        &stack.platform,
        "",
    ))
    .await;
    let b = Replica::start(config(
        "replica-b",
        &stack.fake,
        &stack.redis,
        &stack.platform,
        "",
    ))
    .await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_delivered_three_times_across_replicas_is_answered_once() {
    let stack = stack().await;
    let (a, b) = replicas(&stack).await;
    let client = reqwest::Client::new();

    let statuses = [
        post(&client, &a, "c-dup", "m-dup", "你好").await,
        post(&client, &b, "c-dup", "m-dup", "你好").await,
        post(&client, &a, "c-dup", "m-dup", "你好").await,
    ];

    assert_eq!(
        statuses,
        [202, 200, 200],
        "accepted once, then recognised as duplicates"
    );
    assert!(stack.platform.wait_for(1, Duration::from_secs(10)).await);
    assert!(
        !stack
            .platform
            .wait_for(2, Duration::from_millis(1500))
            .await,
        "no second delivery"
    );
    assert_eq!(
        deliveries(&stack.platform),
        vec![(
            "c-dup".into(),
            "m-dup".into(),
            "echo: 你好 (history: 0)".into()
        )]
    );
    assert_eq!(stack.fake.calls(), 1, "one LLM call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_replica_mid_llm_call_is_completed_by_the_other() {
    let stack = stack().await;
    let (a, b) = replicas(&stack).await;
    a_killed_replicas_job_is_completed_by_the_other(&stack.fake, &stack.platform, a, b).await;
}

/// Kills (`-9`) whichever of `a` and `b` is calling the LLM for a message; the other must
/// reclaim the job and answer it once. Shared by the single-Redis and the cluster suites.
pub async fn a_killed_replicas_job_is_completed_by_the_other(
    fake: &FakeBailian,
    platform: &FakePlatform,
    mut a: Replica,
    mut b: Replica,
) {
    let client = reqwest::Client::new();
    fake.set_delay(Duration::from_secs(3));

    assert_eq!(post(&client, &a, "c-kill", "m-kill", "问题").await, 202);
    assert!(
        fake.wait_for_calls(1, Duration::from_secs(10)).await,
        "the LLM call started"
    );
    let caller = fake.requests()[0]
        .header("x-dashscope-workspace")
        .unwrap()
        .to_owned();
    fake.set_delay(Duration::ZERO);
    let survivor = if caller == "replica-a" {
        a.kill9().await;
        &b
    } else {
        b.kill9().await;
        &a
    };

    assert!(
        platform.wait_for(1, Duration::from_secs(20)).await,
        "the survivor completed the job"
    );
    assert!(
        !platform.wait_for(2, Duration::from_secs(3)).await,
        "exactly one answer"
    );
    assert_eq!(deliveries(platform)[0].2, "echo: 问题 (history: 0)");
    assert_eq!(
        fake.calls(),
        2,
        "the dead replica's call, then the survivor's"
    );
    let other = if caller == "replica-a" {
        "replica-b"
    } else {
        "replica-a"
    };
    assert_eq!(
        fake.requests()[1].header("x-dashscope-workspace"),
        Some(other)
    );
    assert_eq!(survivor.readyz().await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_during_traffic_shows_in_readyz_and_processing_resumes() {
    let mut stack = stack().await;
    let (a, b) = replicas(&stack).await;
    let client = reqwest::Client::new();
    for n in 0..5 {
        post_until_accepted(
            &client,
            &a,
            &format!("c-r{n}"),
            &format!("before-{n}"),
            "早",
        )
        .await;
    }
    assert!(stack.platform.wait_for(5, Duration::from_secs(10)).await);

    stack.redis.stop().await;
    let mut outage_seen = false;
    for _ in 0..100 {
        if a.readyz().await == 503 && b.readyz().await == 503 {
            outage_seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let during = post(&client, &a, "c-r0", "during", "晚").await;
    stack.redis.restart().await;
    for n in 0..5 {
        let replica = if n % 2 == 0 { &a } else { &b };
        post_until_accepted(
            &client,
            replica,
            &format!("c-r{n}"),
            &format!("after-{n}"),
            "晚",
        )
        .await;
    }

    assert!(outage_seen, "/readyz showed the outage on both replicas");
    assert_eq!(
        during, 503,
        "a message during the outage is refused, so the platform retries it"
    );
    assert!(
        stack.platform.wait_for(10, Duration::from_secs(20)).await,
        "processing resumed by itself"
    );
    let after: Vec<_> = deliveries(&stack.platform)
        .into_iter()
        .filter(|d| d.1.starts_with("after-"))
        .collect();
    assert_eq!(after.len(), 5);
    assert_eq!(a.readyz().await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout)] // the scenario reports the counts it checked
async fn a_thousand_messages_over_a_hundred_conversations_once_each_in_order() {
    let stack = stack().await;
    let (a, b) = replicas(&stack).await;
    let client = reqwest::Client::new();
    const CONVERSATIONS: usize = 100;
    const PER_CONVERSATION: usize = 10;

    send_conversations(&client, &a, &b, CONVERSATIONS, PER_CONVERSATION).await;
    let total = CONVERSATIONS * PER_CONVERSATION;
    let settled = stack
        .platform
        .settle(total, Duration::from_secs(60), Duration::from_secs(2))
        .await;
    assert_eq!(settled, total, "all answered, none twice");

    let checked = assert_each_once_in_order(&stack.platform, CONVERSATIONS, PER_CONVERSATION);
    assert_eq!(stack.fake.calls(), total, "one LLM call per message");
    println!("checked {checked} deliveries in {CONVERSATIONS} conversations: each once, in order");
}

/// Sends `per_conversation` messages in each of `conversations` conversations (`conv-{c}`,
/// message ids `conv-{c}-{i}`, text `{i}`), one after the other within a conversation and
/// alternating between the replicas, all conversations at once.
pub async fn send_conversations(
    client: &reqwest::Client,
    a: &Replica,
    b: &Replica,
    conversations: usize,
    per_conversation: usize,
) {
    let senders = (0..conversations).map(|c| async move {
        for i in 0..per_conversation {
            let replica = if (c + i) % 2 == 0 { a } else { b };
            post_until_accepted(
                client,
                replica,
                &format!("conv-{c}"),
                &format!("conv-{c}-{i}"),
                &format!("{i}"),
            )
            .await;
        }
    });
    futures_util::future::join_all(senders).await;
}

/// Checks what [`send_conversations`] sent was answered once each, in order, with the memory
/// of the turns before; returns how many deliveries it checked.
pub fn assert_each_once_in_order(
    platform: &FakePlatform,
    conversations: usize,
    per_conversation: usize,
) -> usize {
    let mut by_conversation: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (conversation, message_id, text) in deliveries(platform) {
        by_conversation
            .entry(conversation)
            .or_default()
            .push((message_id, text));
    }
    let mut checked = 0;
    for c in 0..conversations {
        let got = &by_conversation[&format!("conv-{c}")];
        let expected: Vec<(String, String)> = (0..per_conversation)
            .map(|i| {
                (
                    format!("conv-{c}-{i}"),
                    format!("echo: {i} (history: {})", 2 * i),
                )
            })
            .collect();
        assert_eq!(
            got, &expected,
            "conversation {c}: in order, each once, memory intact"
        );
        checked += got.len();
    }
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_job_in_flight() {
    let stack = stack().await;
    let mut a = Replica::start(config(
        "replica-a",
        &stack.fake,
        &stack.redis,
        &stack.platform,
        "",
    ))
    .await;
    let client = reqwest::Client::new();
    stack.fake.set_delay(Duration::from_millis(1500));

    assert_eq!(post(&client, &a, "c-drain", "m-drain", "慢慢来").await, 202);
    assert!(stack.fake.wait_for_calls(1, Duration::from_secs(10)).await);
    let status = a.terminate().await;

    assert!(status.success(), "clean exit: {status:?}");
    assert_eq!(
        deliveries(&stack.platform).len(),
        1,
        "the answer in flight was delivered before exit"
    );
}
