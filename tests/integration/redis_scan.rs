//! `any_key_matching`: the bounded check a new deployment makes once for keys of the older
//! passive layout, on one Redis and on every master of a real three-master cluster.

use std::collections::HashSet;

use botgate::store::{any_key_matching, RedisStore};
use botgate_testkit::{RedisCluster, RedisServer};

#[tokio::test]
async fn on_one_redis_a_match_is_found_and_a_big_keyspace_is_not_scanned_through() {
    let redis = RedisServer::start().await;
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let connection = store.connection();
    let mut raw = redis.connection().await;

    let empty = any_key_matching(&connection, "*:outbox:*", 64)
        .await
        .unwrap();
    let mut pipeline = redis::pipe();
    for n in 0..5000 {
        pipeline.set(format!("other:{n}"), 1).ignore();
    }
    let _: () = pipeline.query_async(&mut raw).await.unwrap();
    let too_big = any_key_matching(&connection, "*:outbox:*", 1)
        .await
        .unwrap();
    let none_among_them = any_key_matching(&connection, "*:outbox:*", 64)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("bg:wechat:outbox:shop:o-1")
        .arg("x")
        .query_async(&mut raw)
        .await
        .unwrap();
    let found = any_key_matching(&connection, "*:outbox:*", 64)
        .await
        .unwrap();

    assert_eq!(empty, Some(false));
    assert_eq!(
        too_big, None,
        "one round of 1,000 cannot see 5,000 keys through"
    );
    assert_eq!(none_among_them, Some(false));
    assert_eq!(found, Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_every_master_is_scanned() {
    let cluster = RedisCluster::start().await;
    let store = RedisStore::connect_cluster(&cluster.urls()).await.unwrap();
    let connection = store.connection();
    // One matching key on each master in turn.
    let mut owners = HashSet::new();
    let mut keys = Vec::new();
    for n in 0.. {
        let key = format!("k{n}:outbox:x");
        if owners.insert(cluster.owner_port(&key).await) {
            keys.push(key);
        }
        if owners.len() == cluster.ports().len() {
            break;
        }
    }

    assert_eq!(
        any_key_matching(&connection, "*:outbox:*", 64)
            .await
            .unwrap(),
        Some(false)
    );
    for key in keys {
        let mut node = cluster.connection_for(&key).await;
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg("x")
            .query_async(&mut node)
            .await
            .unwrap();
        assert_eq!(
            any_key_matching(&connection, "*:outbox:*", 64)
                .await
                .unwrap(),
            Some(true),
            "{key} on port {}",
            cluster.owner_port(&key).await
        );
        let _: () = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut node)
            .await
            .unwrap();
    }
}
