//! The Redis connection under every subsystem: a thread of its own where one was bound, the
//! shared one elsewhere, and a dropped connection survived by one more try.

use botgate::store::{RedisConnection, RedisStore};
use botgate_testkit::RedisServer;

async fn client_id(connection: &RedisConnection) -> i64 {
    redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut connection.clone())
        .await
        .unwrap()
}

/// Runs `work` on a thread of its own with a single-threaded runtime, as an HTTP worker has.
fn on_worker_thread<T: Send + 'static>(
    work: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work())
    })
    .join()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_thread_uses_its_own_connection_and_others_the_shared_one() {
    let redis = RedisServer::start().await;
    let connection = RedisStore::connect(&redis.url())
        .await
        .unwrap()
        .connection();
    let shared = client_id(&connection).await;

    let worker = connection.clone();
    let (first, second) = on_worker_thread(move || {
        Box::pin(async move {
            worker.bind_to_this_thread().unwrap();
            (client_id(&worker).await, client_id(&worker).await)
        })
    });
    let unbound = connection.clone();
    let elsewhere = on_worker_thread(move || Box::pin(async move { client_id(&unbound).await }));

    assert_ne!(
        first, shared,
        "the bound thread opened a connection of its own"
    );
    assert_eq!(first, second, "and kept it");
    assert_eq!(
        elsewhere, shared,
        "a thread without one uses the shared connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_on_a_dropped_connection_is_sent_again_once_reconnected() {
    let redis = RedisServer::start().await;
    let connection = RedisStore::connect(&redis.url())
        .await
        .unwrap()
        .connection();
    let before = client_id(&connection).await;
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(before)
        .query_async(&mut redis.connection().await)
        .await
        .unwrap();

    let after: String = redis::cmd("PING")
        .query_async(&mut connection.clone())
        .await
        .expect("the command that met the dropped connection succeeded on the new one");

    assert_eq!(after, "PONG");
    assert_ne!(client_id(&connection).await, before, "on a new connection");
}

/// The case every script must survive: Redis ran the command, the connection dropped before
/// the reply arrived, and the command was sent again on a new connection, so it ran twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_whose_reply_was_lost_is_run_again() {
    let redis = RedisServer::start().await;
    let proxy = botgate_testkit::DropProxy::start(redis.port()).await;
    let connection = RedisStore::connect(&proxy.url())
        .await
        .unwrap()
        .connection();
    proxy.arm("counted-twice");

    let count: u64 = redis::cmd("INCR")
        .arg("counted-twice")
        .query_async(&mut connection.clone())
        .await
        .expect("answered on the new connection");

    assert_eq!(proxy.fired(), 1);
    assert_eq!(count, 2, "INCR ran before the drop and again after it");
}
