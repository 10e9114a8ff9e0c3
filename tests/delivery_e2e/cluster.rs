//! The delivery guarantees on a real three-master Redis Cluster: two replicas, every key under
//! the hash-tag prefix the configuration requires, the job queue, claims, order, memory and
//! reclaims on the node that owns that slot.

use std::time::Duration;

use botgate_testkit::{FakeBailian, FakePlatform, RedisCluster};

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
    let store = stack.cluster.store_toml();
    Replica::start(config_on(name, &stack.fake, &store, &stack.platform, "")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_messages_are_answered_once_in_order_across_replicas() {
    let stack = cluster_stack().await;
    let a = replica(&stack, "replica-a").await;
    let b = replica(&stack, "replica-b").await;
    let client = reqwest::Client::new();
    const CONVERSATIONS: usize = 10;
    const PER_CONVERSATION: usize = 5;

    let statuses = [
        post(&client, &a, "c-dup", "m-dup", "你好").await,
        post(&client, &b, "c-dup", "m-dup", "你好").await,
    ];
    send_conversations(&client, &a, &b, CONVERSATIONS, PER_CONVERSATION).await;

    assert_eq!(statuses, [202, 200], "accepted once, then a duplicate");
    let total = CONVERSATIONS * PER_CONVERSATION + 1;
    assert!(
        stack
            .platform
            .wait_for(total, Duration::from_secs(30))
            .await,
        "all answered"
    );
    assert!(
        !stack
            .platform
            .wait_for(total + 1, Duration::from_millis(1500))
            .await,
        "none answered twice"
    );
    assert_each_once_in_order(&stack.platform, CONVERSATIONS, PER_CONVERSATION);
    assert_eq!(stack.fake.calls(), total, "one LLM call per message");

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
