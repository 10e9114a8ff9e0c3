//! The passive outbox's two-round-trip path, on Redis and in process: the answer is bound to
//! the request that waits for it when it is committed, and never to one that gave up.

use std::time::Duration;

use botgate::channels::wechat::Outbox;
use botgate::core::PendingTurn;
use botgate::store::{MemoryStore, RedisStore, Store, Turn};
use botgate_testkit::RedisServer;

const WAIT: Duration = Duration::from_secs(5);
const HISTORY: &str = "bg:shop:wechat:o-1:history";

struct Backend {
    outbox: Outbox,
    store: Store,
    _redis: Option<RedisServer>,
}

async fn backends() -> Vec<(&'static str, Backend)> {
    let redis = RedisServer::start().await;
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let outbox = Outbox::redis(store.connection(), "bg:wechat");
    vec![
        (
            "embedded",
            Backend {
                outbox: Outbox::memory(),
                store: Store::Memory(MemoryStore::new()),
                _redis: None,
            },
        ),
        (
            "redis",
            Backend {
                outbox,
                store: Store::Redis(store),
                _redis: Some(redis),
            },
        ),
    ]
}

fn pending(user: &str, assistant: &str) -> PendingTurn {
    PendingTurn {
        key: HISTORY.to_owned(),
        turn: Turn {
            user: user.to_owned(),
            assistant: assistant.to_owned(),
        },
        max_turns: 10,
        ttl: Duration::from_secs(600),
    }
}

fn parts(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|text| (*text).to_owned()).collect()
}

#[tokio::test]
async fn commit_binds_the_first_part_to_the_waiting_request_and_queues_the_rest() {
    for (name, backend) in backends().await {
        let Backend { outbox, store, .. } = &backend;
        let arrival = outbox
            .arrive("o-1", "m1", "q", Some(HISTORY), WAIT)
            .await
            .unwrap();
        assert!(arrival.generate, "{name}");

        let bound = outbox
            .commit(
                store,
                "o-1",
                "m1",
                &parts(&["一", "二"]),
                Some(&pending("问", "一二")),
            )
            .await
            .unwrap();

        assert_eq!(bound.as_deref(), Some("一"), "{name}");
        assert_eq!(
            outbox.take("o-1", "m1").await.unwrap().as_deref(),
            Some("一"),
            "{name}: a retry of the same message gets the same bytes"
        );
        assert_eq!(
            outbox.take("o-1", "m2").await.unwrap().as_deref(),
            Some("二"),
            "{name}: the next message pulls the second part"
        );
        assert_eq!(
            store.history(HISTORY).await.unwrap(),
            vec![pending("问", "一二").turn],
            "{name}: the turn was remembered in the same commit"
        );
    }
}

#[tokio::test]
async fn an_answer_committed_after_the_request_gave_up_waits_for_the_next_delivery() {
    for (name, backend) in backends().await {
        let Backend { outbox, store, .. } = &backend;
        outbox
            .arrive("o-1", "m1", "q", Some(HISTORY), WAIT)
            .await
            .unwrap();
        assert_eq!(
            outbox.take_final("o-1", "m1").await.unwrap(),
            None,
            "{name}"
        );

        let bound = outbox
            .commit(
                store,
                "o-1",
                "m1",
                &parts(&["答"]),
                Some(&pending("问", "答")),
            )
            .await
            .unwrap();

        assert_eq!(
            bound, None,
            "{name}: nothing is bound to a request that answered without it"
        );
        assert_eq!(
            outbox.take("o-1", "m1").await.unwrap().as_deref(),
            Some("答"),
            "{name}: WeChat's retry of the message takes it"
        );
    }
}

#[tokio::test]
async fn the_waiting_mark_lapses_with_the_wait() {
    for (name, backend) in backends().await {
        let Backend { outbox, store, .. } = &backend;
        outbox
            .arrive("o-1", "m1", "q", None, Duration::from_millis(50))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;

        let bound = outbox
            .commit(store, "o-1", "m1", &parts(&["答"]), None)
            .await
            .unwrap();

        assert_eq!(
            bound, None,
            "{name}: a request dropped mid-wait is not bound to"
        );
        assert_eq!(
            outbox.take("o-1", "m2").await.unwrap().as_deref(),
            Some("答"),
            "{name}: the user's next message pulls it"
        );
    }
}

#[tokio::test]
async fn arrive_reads_the_memory_only_for_the_generating_request() {
    let redis = RedisServer::start().await;
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let outbox = Outbox::redis(store.connection(), "bg:wechat");
    let memory = Store::Redis(store);
    memory
        .append_turn(HISTORY, &pending("早", "早上好").turn, 10, WAIT)
        .await
        .unwrap();

    let first = outbox
        .arrive("o-1", "m1", "q", Some(HISTORY), WAIT)
        .await
        .unwrap();
    let retry = outbox
        .arrive("o-1", "m1", "q", Some(HISTORY), WAIT)
        .await
        .unwrap();

    assert_eq!(first.history, Some(vec![pending("早", "早上好").turn]));
    assert_eq!(
        (retry.attempt, retry.generate, retry.history),
        (2, false, None)
    );
}
