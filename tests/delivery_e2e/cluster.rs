//! The delivery guarantees on a real three-master Redis Cluster: two replicas, every key under
//! the hash-tag prefix the configuration requires, the job queue, claims, order, memory and
//! reclaims on the node that owns that slot; and with `store.shards`, the same guarantees with
//! conversations spread over every node.

use std::time::Duration;

use botgate::delivery::Queue;
use botgate::keyspace::KeySpace;
use botgate::store::RedisStore;
use botgate_testkit::{FakeBailian, FakePlatform, RedisCluster};

use crate::dingtalk::{dingtalk_table, message_via, WEBHOOK};
use crate::harness::{config_on, post, Replica};
use crate::scenarios::{
    a_killed_replicas_job_is_completed_by_the_other, assert_each_once_in_order, send_conversations,
};

struct ClusterStack {
    fake: FakeBailian,
    cluster: RedisCluster,
    platform: FakePlatform,
}

async fn cluster_stack() -> ClusterStack {
    ClusterStack {
        fake: FakeBailian::start().await,
        cluster: RedisCluster::start().await,
        platform: FakePlatform::start().await,
    }
}

async fn replica(stack: &ClusterStack, name: &str) -> Replica {
    replica_with(stack, name, "").await
}

/// Six shards on three masters: two shards' streams and conversations on each.
const SHARDED: &str = "shards = 6";

async fn replica_with(stack: &ClusterStack, name: &str, store_extra: &str) -> Replica {
    let store = format!("{}\n{store_extra}", stack.cluster.store_toml());
    Replica::start(config_on(name, &stack.fake, &store, &stack.platform, "")).await
}

/// Two replicas on the cluster (with `store_extra` in `[store]`): a message and its platform
/// retry, then `conversations` × `per_conversation` messages spread over both replicas, each
/// answered once, in its conversation's order, with one LLM call.
async fn answered_once_in_order_across_replicas(
    stack: &ClusterStack,
    store_extra: &str,
    conversations: usize,
    per_conversation: usize,
) {
    let a = replica_with(stack, "replica-a", store_extra).await;
    let b = replica_with(stack, "replica-b", store_extra).await;
    let client = reqwest::Client::new();

    let statuses = [
        post(&client, &a, "c-dup", "m-dup", "你好").await,
        post(&client, &b, "c-dup", "m-dup", "你好").await,
    ];
    send_conversations(&client, &a, &b, conversations, per_conversation).await;

    assert_eq!(statuses, [202, 200], "accepted once, then a duplicate");
    let total = conversations * per_conversation + 1;
    let settled = stack
        .platform
        .settle(total, Duration::from_secs(30), Duration::from_millis(1500))
        .await;
    assert_eq!(settled, total, "all answered, none twice");
    assert_each_once_in_order(&stack.platform, conversations, per_conversation);
    assert_eq!(stack.fake.calls(), total, "one LLM call per message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_messages_are_answered_once_in_order_across_replicas() {
    let stack = cluster_stack().await;
    const PER_CONVERSATION: usize = 5;

    answered_once_in_order_across_replicas(&stack, "", 10, PER_CONVERSATION).await;

    // Everything lives in the prefix's slot, on the one node that owns it.
    let mut owner = stack.cluster.connection_for("{botgate}").await;
    let memory: i64 = redis::cmd("LLEN")
        .arg("{botgate}:shop:webhook:conv-0:history")
        .query_async(&mut owner)
        .await
        .unwrap();
    assert_eq!(
        memory, PER_CONVERSATION as i64,
        "one turn per message, in the memory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_a_job_of_a_killed_replica_is_completed_by_the_other() {
    let stack = cluster_stack().await;
    let a = replica(&stack, "replica-a").await;
    let b = replica(&stack, "replica-b").await;
    a_killed_replicas_job_is_completed_by_the_other(&stack.fake, &stack.platform, a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_shards_conversations_spread_over_every_node_and_are_answered_once_in_order() {
    let stack = cluster_stack().await;
    const CONVERSATIONS: usize = 12;

    answered_once_in_order_across_replicas(&stack, SHARDED, CONVERSATIONS, 4).await;

    // Each master holds some of the conversations' memories and shard job streams.
    let memories = stack.cluster.keys_per_node("{botgate:*:history").await;
    assert_eq!(
        memories.iter().sum::<usize>(),
        CONVERSATIONS + 1,
        "{memories:?}"
    );
    assert!(memories.iter().all(|&count| count > 0), "{memories:?}");
    let streams = stack.cluster.keys_per_node("{botgate:*}:jobs").await;
    assert!(streams.iter().all(|&count| count == 2), "{streams:?}");
    assert_eq!(
        stack.cluster.keys_per_node("{botgate}*").await,
        [0, 0, 0],
        "nothing about a conversation under the unsharded prefix"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_shards_a_job_of_a_killed_replica_is_completed_by_the_other() {
    let stack = cluster_stack().await;
    let a = replica_with(&stack, "replica-a", SHARDED).await;
    let b = replica_with(&stack, "replica-b", SHARDED).await;
    a_killed_replicas_job_is_completed_by_the_other(&stack.fake, &stack.platform, a, b).await;
}

/// Stream ids repeat across shards, so operators name a dead letter by shard and id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_shards_dead_letters_are_listed_shown_and_retried_by_shard_and_id() {
    let cluster = RedisCluster::start().await;
    let store = RedisStore::connect_cluster(&cluster.urls()).await.unwrap();
    let queue = Queue::redis(
        store.connection(),
        &KeySpace::new("{bg}", 3),
        Duration::from_secs(30),
    );
    const WAIT: Duration = Duration::from_secs(2);
    for (shard, payload) in [(1, "poison one"), (2, "poison two")] {
        queue.enqueue(shard, payload).await.unwrap();
        let job = queue.next(shard, "w", WAIT).await.unwrap().unwrap();
        assert_eq!((job.shard, job.payload.as_str()), (shard, payload));
        queue.dead_letter(&job, "bad").await.unwrap();
    }

    let letters = queue.dead_letters(10).await.unwrap();
    let listed: Vec<(&str, &str)> = letters
        .iter()
        .map(|letter| (&letter.id[..2], letter.payload.as_str()))
        .collect();
    let shown = queue.dead_letter_by_id(&letters[1].id).await.unwrap();
    let retried = queue.retry_dead_letter(&letters[0].id).await.unwrap();
    let again = queue.next(2, "w", WAIT).await.unwrap().unwrap();

    assert_eq!(listed, [("2/", "poison two"), ("1/", "poison one")]);
    assert_eq!(shown.unwrap().payload, "poison one");
    assert!(retried.unwrap().starts_with("2/"));
    assert_eq!(again.payload, "poison two");
    assert_eq!(queue.dead_letters(10).await.unwrap().len(), 1);
    let unsharded = letters[0].id.split_once('/').unwrap().1;
    assert_eq!(queue.dead_letter_by_id(unsharded).await.unwrap(), None);
}

/// DingTalk's per-message keys (the reply context kept at arrival, read when the answer goes
/// out) live in the conversation's shard too, and a sender's rate window in the sender's:
/// messages from nine people in nine groups are each answered through their own session
/// webhook, and their contexts and rate windows sit on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_shards_dingtalk_group_messages_are_answered_and_their_keys_spread() {
    let stack = cluster_stack().await;
    let store = format!("{}\n{SHARDED}", stack.cluster.store_toml());
    let table = format!(
        "[bots.shop.rate_limit]\nmessages = 5\nper_secs = 60\n{}",
        dingtalk_table(&stack.platform, "")
    );
    let replica =
        Replica::start(config_on("a", &stack.fake, &store, &stack.platform, &table)).await;
    const GROUPS: usize = 9;

    for group in 0..GROUPS {
        let mut message = message_via(&stack.platform, &format!("msg-g{group}"), "你好");
        message.group = true;
        message.conversation_id = format!("cid-group-{group}");
        message.sender_staff_id = Some(format!("staff-{group}"));
        message.sender_id = format!("$:LWCP_v1:$sender-{group}");
        let (status, _) = crate::dingtalk::post(&replica, &message).await;
        assert_eq!(status, 200);
    }

    assert!(
        stack
            .platform
            .wait_for(GROUPS, Duration::from_secs(20))
            .await,
        "every group answered"
    );
    let mut sessions: Vec<String> = stack
        .platform
        .received_on(WEBHOOK)
        .iter()
        .filter_map(|sent| sent.query_param("session").map(str::to_owned))
        .collect();
    sessions.sort();
    let expected: Vec<String> = (0..GROUPS).map(|group| format!("s-msg-g{group}")).collect();
    assert_eq!(
        sessions, expected,
        "each through its own session webhook, once"
    );
    let contexts = stack
        .cluster
        .keys_per_node("{botgate:*:dingtalk:shop:reply:*")
        .await;
    assert_eq!(contexts.iter().sum::<usize>(), GROUPS, "{contexts:?}");
    assert!(contexts.iter().all(|&count| count > 0), "{contexts:?}");
    let windows = stack.cluster.keys_per_node("{botgate:*:rate:*").await;
    assert_eq!(windows.iter().sum::<usize>(), GROUPS, "{windows:?}");
    assert!(windows.iter().all(|&count| count > 0), "{windows:?}");
}
