//! Limits shared by replicas: fixed-window rates and leased concurrency slots.

use std::time::Duration;

use botgate::spawn_traced;
use tokio::time::{sleep, Instant};

use super::{Backend, Kind};

const USER: &str = "wechat:wx1:openid-1";
const BOT: &str = "shop";
const LONG_LEASE: Duration = Duration::from_secs(30);
const SHORT_LEASE: Duration = Duration::from_millis(300);

both!(
    allow_admits_max_per_window_across_replicas_then_resets,
    slots_run_out_at_max_and_release_frees_one,
    an_unreleased_slot_frees_itself_when_its_lease_runs_out,
    renewing_keeps_a_slot_past_its_first_lease,
    acquire_wait_gets_a_slot_once_one_is_freed,
    dropping_a_slot_releases_it,
);

async fn allow_admits_max_per_window_across_replicas_then_resets(kind: Kind) {
    let backend = Backend::start(kind).await;
    let [replica_a, replica_b] = backend.limits();
    let window = Duration::from_millis(400);

    let mut allowed = Vec::new();
    for (replica, message) in [
        (&replica_a, "m1"),
        (&replica_b, "m2"),
        (&replica_a, "m3"),
        (&replica_b, "m4"),
    ] {
        allowed.push(replica.allow(USER, message, 3, window).await.unwrap());
    }
    // A retry of a message already counted gets its first verdict and counts nothing more.
    let retried = [
        replica_b.allow(USER, "m2", 3, window).await.unwrap(),
        replica_a.allow(USER, "m4", 3, window).await.unwrap(),
    ];
    let other_user = replica_a
        .allow("wechat:wx1:openid-2", "m1", 3, window)
        .await
        .unwrap();
    sleep(window + Duration::from_millis(50)).await;
    let next_window = replica_b.allow(USER, "m5", 3, window).await.unwrap();

    assert_eq!(allowed, [true, true, true, false]);
    assert_eq!(retried, [true, false]);
    assert!(other_user);
    assert!(next_window);
}

async fn slots_run_out_at_max_and_release_frees_one(kind: Kind) {
    let backend = Backend::start(kind).await;
    let [replica_a, replica_b] = backend.limits();

    let first = replica_a.acquire(BOT, 2, LONG_LEASE).await.unwrap();
    let second = replica_b.acquire(BOT, 2, LONG_LEASE).await.unwrap();
    let third = replica_a.acquire(BOT, 2, LONG_LEASE).await.unwrap();
    let other_bot = replica_a.acquire("other", 2, LONG_LEASE).await.unwrap();
    first.unwrap().release().await.unwrap();
    let after_release = replica_b.acquire(BOT, 2, LONG_LEASE).await.unwrap();
    let full_again = replica_a.acquire(BOT, 2, LONG_LEASE).await.unwrap();

    assert!(second.is_some());
    assert!(third.is_none());
    assert!(other_bot.is_some());
    assert!(after_release.is_some());
    assert!(full_again.is_none());
}

async fn an_unreleased_slot_frees_itself_when_its_lease_runs_out(kind: Kind) {
    let backend = Backend::start(kind).await;
    let [replica_a, replica_b] = backend.limits();
    let held = replica_a
        .acquire(BOT, 1, SHORT_LEASE)
        .await
        .unwrap()
        .unwrap();
    // The replica dies holding it: no release, no drop.
    std::mem::forget(held);

    let while_held = replica_b.acquire(BOT, 1, SHORT_LEASE).await.unwrap();
    sleep(SHORT_LEASE + Duration::from_millis(50)).await;
    let after_lease = replica_b.acquire(BOT, 1, SHORT_LEASE).await.unwrap();

    assert!(while_held.is_none());
    assert!(after_lease.is_some());
}

async fn renewing_keeps_a_slot_past_its_first_lease(kind: Kind) {
    let backend = Backend::start(kind).await;
    let [replica_a, replica_b] = backend.limits();
    let held = replica_a
        .acquire(BOT, 1, SHORT_LEASE)
        .await
        .unwrap()
        .unwrap();

    for _ in 0..6 {
        sleep(SHORT_LEASE / 3).await;
        assert!(held.renew().await.unwrap());
        assert!(replica_b
            .acquire(BOT, 1, SHORT_LEASE)
            .await
            .unwrap()
            .is_none());
    }
    held.release().await.unwrap();

    assert!(replica_b
        .acquire(BOT, 1, SHORT_LEASE)
        .await
        .unwrap()
        .is_some());
}

async fn acquire_wait_gets_a_slot_once_one_is_freed(kind: Kind) {
    let backend = Backend::start(kind).await;
    let [replica_a, replica_b] = backend.limits();
    let held = replica_a
        .acquire(BOT, 1, LONG_LEASE)
        .await
        .unwrap()
        .unwrap();
    let started = Instant::now();
    spawn_traced(async move {
        sleep(Duration::from_millis(200)).await;
        held.release().await.unwrap();
    });

    let deadline = started + Duration::from_secs(2);
    let waited_for = replica_b.acquire_wait(BOT, 1, LONG_LEASE, deadline).await;
    let waited_for = waited_for.unwrap();
    let waited = started.elapsed();
    let short_deadline = Instant::now() + Duration::from_millis(100);
    let gave_up = replica_a
        .acquire_wait(BOT, 1, LONG_LEASE, short_deadline)
        .await;
    let gave_up_at = Instant::now();

    assert!(waited_for.is_some());
    assert!(
        waited >= Duration::from_millis(180),
        "got it after {waited:?}"
    );
    assert!(gave_up.unwrap().is_none());
    assert!(gave_up_at >= short_deadline);
    assert!(gave_up_at < short_deadline + Duration::from_millis(100));
}

async fn dropping_a_slot_releases_it(kind: Kind) {
    let backend = Backend::start(kind).await;
    let [replica_a, replica_b] = backend.limits();
    let held = replica_a
        .acquire(BOT, 1, LONG_LEASE)
        .await
        .unwrap()
        .unwrap();

    drop(held);
    // Redis releases in a background task: give it a moment, far less than the lease.
    let deadline = Instant::now() + Duration::from_secs(1);
    let after_drop = replica_b.acquire_wait(BOT, 1, LONG_LEASE, deadline).await;

    assert!(after_drop.unwrap().is_some());
}
