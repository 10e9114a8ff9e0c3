//! Upgrading from the layout before the box (an outbox list, a state hash and a record per
//! message, as an older botgate left them in Redis): what it owed is delivered, in order, and
//! its messages' retries are known, while the upgrade's window lasts; after it, the old keys
//! cost nothing.

use botgate::channels::passive::outbox::{Kind, Role, TakeMode};
use botgate::channels::wechat::CONTINUE_HINT;
use botgate_testkit::RedisServer;

use super::outbox::{on_redis, text, USER, WAIT};

/// What an older botgate left for user `o-1`: its outbox entries and state fields, and message
/// `m0`'s record (JSON) when given.
async fn left_by_an_older_botgate(
    redis: &RedisServer,
    outbox: &[&str],
    state: &[(&str, &str)],
    record: Option<&str>,
) {
    let mut pipeline = redis::pipe();
    pipeline
        .cmd("RPUSH")
        .arg("bg:wechat:outbox:shop:o-1")
        .arg(outbox)
        .ignore();
    if !state.is_empty() {
        pipeline
            .cmd("HSET")
            .arg("bg:wechat:outbox:shop:o-1:state")
            .arg(state)
            .ignore();
    }
    if let Some(record) = record {
        pipeline
            .cmd("SET")
            .arg("bg:wechat:msg:shop:m0")
            .arg(record)
            .arg("EX")
            .arg(600)
            .ignore();
    }
    let _: () = pipeline
        .query_async(&mut redis.connection().await)
        .await
        .unwrap();
}

/// A message whose first delivery an older botgate recorded (a hash, before 2026-12-03) is
/// carried on by this one after an upgrade: its retry is known as a retry, and its answer is
/// bound to it.
#[tokio::test]
async fn a_message_recorded_by_an_older_botgate_is_carried_on_after_an_upgrade() {
    let redis = RedisServer::start().await;
    let backend = on_redis(&redis).await;
    let outbox = &backend.outbox;
    let mut connection = redis.connection().await;
    let far_ahead = "4000000000000";
    // What the older ARRIVE left for "m1", asked by request "r1" and generating now.
    let _: () = redis::pipe()
        .cmd("HSET")
        .arg("bg:wechat:msg:shop:m1")
        .arg(&[("n", "1"), ("w", far_ahead), ("rr1", "1:1")])
        .cmd("EXPIRE")
        .arg("bg:wechat:msg:shop:m1")
        .arg(600)
        .query_async(&mut connection)
        .await
        .unwrap();
    left_by_an_older_botgate(
        &redis,
        &["Am1"],
        &[("q:m1", "q"), ("l:m1", far_ahead)],
        None,
    )
    .await;

    let again = outbox
        .arrive(USER, "m1", "r1", "q", Kind::Question, None, WAIT)
        .await
        .unwrap();
    let retry = outbox
        .arrive(USER, "m1", "r2", "q", Kind::Question, None, WAIT)
        .await
        .unwrap();
    let committed = backend.commit("m1", &["答"]).await;

    assert_eq!((again.attempt, again.role), (1, Role::Generate));
    assert_eq!((retry.attempt, retry.role), (2, Role::Retry));
    assert_eq!(committed.bound.as_deref(), Some("答"));
    assert_eq!(
        outbox.take(USER, "m1", TakeMode::Look).await.unwrap(),
        text("答")
    );
}

/// What an older botgate owed a user (a ready part, then a stored answer of two parts, with
/// the user promised them) comes with the user's next messages, in order, and a fallback it had
/// queued is not queued again.
#[tokio::test]
async fn what_an_older_botgate_owed_is_pulled_in_order_after_an_upgrade() {
    let redis = RedisServer::start().await;
    let backend = on_redis(&redis).await;
    let state = [
        ("a:m0", r#"["零一","零二"]"#),
        ("promised", "1"),
        ("f:m9", "1"),
    ];
    left_by_an_older_botgate(&redis, &["P旧", "Am0"], &state, None).await;

    let mut pulled = Vec::new();
    for message in ["m1", "m2", "m3"] {
        assert_eq!(backend.ask(message).await, Role::Pull, "{message}");
        pulled.push(backend.take(message, TakeMode::Look).await);
    }
    backend
        .outbox
        .push_parts(USER, "m9", &["又一次".to_owned()])
        .await
        .unwrap();

    assert_eq!(
        pulled,
        [
            text(&format!("旧{CONTINUE_HINT}")),
            text(&format!("零一{CONTINUE_HINT}")),
            text("零二"),
        ]
    );
    assert_eq!(
        backend.ask("m4").await,
        Role::Generate,
        "nothing is owed any more"
    );
    let mut connection = redis.connection().await;
    let old: usize = redis::cmd("EXISTS")
        .arg("bg:wechat:outbox:shop:o-1")
        .arg("bg:wechat:outbox:shop:o-1:state")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(old, 0, "the old keys are dropped once folded");
}

/// Once the window (48 h and 10 minutes after this layout first ran, marked in Redis) is over,
/// the old keys are not looked at: a user's first message is not a pull of what they held.
#[tokio::test]
async fn after_the_upgrade_window_the_old_keys_are_not_read() {
    let redis = RedisServer::start().await;
    let two_days_ago = botgate::clock::unix_ms() - 49 * 3600 * 1000;
    let _: () = redis::cmd("SET")
        .arg("bg:passive:box_since")
        .arg(two_days_ago)
        .query_async(&mut redis.connection().await)
        .await
        .unwrap();
    left_by_an_older_botgate(&redis, &["P旧"], &[], None).await;
    let backend = on_redis(&redis).await;

    let role = backend.arrive("m1", Kind::Question, WAIT).await;

    assert_eq!(role, (1, Role::Generate));
}

/// A message whose answer an older botgate stored while its deliveries went on: its retries on
/// this one take the answer and keep counting where the old record left off.
#[tokio::test]
async fn a_stored_answer_an_older_botgate_left_goes_to_its_own_retry() {
    let redis = RedisServer::start().await;
    let backend = on_redis(&redis).await;
    let record = r#"{"n":1,"r":{"r-old":"1:1"}}"#;
    left_by_an_older_botgate(&redis, &["Am0"], &[("a:m0", r#"["答"]"#)], Some(record)).await;

    let second = backend
        .outbox
        .arrive(USER, "m0", "r-second", "q", Kind::Question, None, WAIT)
        .await
        .unwrap();
    let taken = backend.take("m0", TakeMode::Look).await;
    let third = backend
        .outbox
        .arrive(USER, "m0", "r-third", "q", Kind::Question, None, WAIT)
        .await
        .unwrap();

    assert_eq!((second.attempt, second.role), (2, Role::Retry));
    assert_eq!(taken, text("答"));
    assert_eq!((third.attempt, third.role), (3, Role::Retry));
    assert_eq!(backend.take("m0", TakeMode::Last).await, text("答"));
}

/// A commit for a message whose question a restart dropped leaves what was bound to that
/// message before (here by an older botgate) bound: its retries still get those bytes.
#[tokio::test]
async fn a_commit_after_a_restart_keeps_what_was_bound_to_the_message() {
    let redis = RedisServer::start().await;
    let backend = on_redis(&redis).await;
    let record = r#"{"n":1,"r":{"r-old":"1:1"},"reply":"早先的答"}"#;
    left_by_an_older_botgate(&redis, &["Am0"], &[("q:m0", "q")], Some(record)).await;
    assert_eq!(
        backend.arrive("m1", Kind::Restart, WAIT).await,
        (1, Role::Generate)
    );

    let committed = backend.commit("m0", &["答"]).await;

    assert_eq!(committed.bound, None, "dropped by the restart");
    assert_eq!(backend.take("m0", TakeMode::Look).await, text("早先的答"));
}

/// A Redis that refuses `SCAN` (a proxy, an ACL) still answers: the look for an older layout is
/// assumed to have found one, and the window opens.
#[tokio::test]
async fn a_redis_that_refuses_scan_still_answers_with_the_window_open() {
    let redis = RedisServer::start().await;
    let mut admin = redis.connection().await;
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER", "no-scan", "on", "nopass", "~*", "&*", "+@all", "-scan",
        ])
        .query_async(&mut admin)
        .await
        .unwrap();
    let url = redis.url().replacen("redis://", "redis://no-scan:any@", 1);
    let store = botgate::store::RedisStore::connect(&url).await.unwrap();
    let outbox = botgate::channels::passive::Outbox::redis(
        store.connection(),
        botgate::keyspace::KeySpace::new("bg", 1),
        botgate_contract::Platform::Wechat,
        CONTINUE_HINT,
    );

    let arrival = outbox
        .arrive(USER, "m1", "r1", "q", Kind::Question, None, WAIT)
        .await
        .unwrap();

    assert_eq!((arrival.attempt, arrival.role), (1, Role::Generate));
    let since: u64 = redis::cmd("GET")
        .arg("bg:passive:box_since")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(since > 0, "the window is open");
}
