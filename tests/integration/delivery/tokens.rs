//! Shared platform tokens: single-flight across replicas, refresh before expiry, invalidation of the failed token only.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use botgate::delivery::tokens::TokenError;
use botgate::spawn_traced;
use tokio::time::sleep;

use super::{Backend, Kind, PREFIX};

const KEY: &str = "wechat:wx0123456789";
const TWO_HOURS: Duration = Duration::from_secs(7200);

/// What a platform's token endpoint hands out, counting the calls.
fn issue(
    fetches: &AtomicUsize,
    token: &str,
    expires_in: Duration,
) -> Result<(String, Duration), TokenError> {
    fetches.fetch_add(1, Ordering::SeqCst);
    Ok((token.to_owned(), expires_in))
}

both!(
    twenty_concurrent_callers_on_two_replicas_fetch_once,
    a_token_near_expiry_is_refreshed_and_a_failed_refresh_keeps_it,
    only_the_token_that_failed_is_invalidated,
);

async fn twenty_concurrent_callers_on_two_replicas_fetch_once(kind: Kind) {
    let backend = Backend::start(kind).await;
    let replicas = backend.token_caches::<2>();
    let fetches = Arc::new(AtomicUsize::new(0));

    let callers: Vec<_> = (0..20)
        .map(|index| {
            let (cache, fetches) = (replicas[index % 2].clone(), fetches.clone());
            spawn_traced(async move {
                cache
                    .get(KEY, move || async move {
                        // Slow enough that every caller arrives while it runs.
                        sleep(Duration::from_millis(200)).await;
                        issue(&fetches, "T1", TWO_HOURS)
                    })
                    .await
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for caller in callers {
        tokens.push(caller.await.unwrap().unwrap());
    }

    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert!(tokens.iter().all(|token| token == "T1"), "{tokens:?}");
}

async fn a_token_near_expiry_is_refreshed_and_a_failed_refresh_keeps_it(kind: Kind) {
    let backend = Backend::start(kind).await;
    let [cache] = backend.token_caches();
    let fetches = AtomicUsize::new(0);
    // Two seconds, well inside the five-minute margin: fresh for half its life, then refreshed.
    let short = Duration::from_secs(2);

    let first = cache.get(KEY, || async { issue(&fetches, "T1", short) });
    let first = first.await.unwrap();
    let cached = cache.get(KEY, || async { issue(&fetches, "unexpected", TWO_HOURS) });
    let cached = cached.await.unwrap();
    sleep(Duration::from_millis(1100)).await;
    let failed_refresh = cache
        .get(KEY, || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Err(TokenError::Fetch("errcode -1 system busy".into()))
        })
        .await
        .unwrap();
    let refreshed = cache.get(KEY, || async { issue(&fetches, "T2", TWO_HOURS) });
    let refreshed = refreshed.await.unwrap();
    let kept = cache.get(KEY, || async { issue(&fetches, "unexpected", TWO_HOURS) });
    let kept = kept.await.unwrap();

    assert_eq!(
        [first, cached, failed_refresh, refreshed, kept],
        ["T1", "T1", "T1", "T2", "T2"]
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 3);
}

async fn only_the_token_that_failed_is_invalidated(kind: Kind) {
    let backend = Backend::start(kind).await;
    let [replica_a, replica_b] = backend.token_caches();
    let fetches = AtomicUsize::new(0);
    let first = replica_a.get(KEY, || async { issue(&fetches, "T1", TWO_HOURS) });
    assert_eq!(first.await.unwrap(), "T1");

    // Both replicas sent with T1 and got 40001. A reacts first: invalidates, refetches.
    let stale = replica_a.invalidate_if(KEY, "T0").await.unwrap();
    let a_invalidated = replica_a.invalidate_if(KEY, "T1").await.unwrap();
    let refreshed = replica_a.get(KEY, || async { issue(&fetches, "T2", TWO_HOURS) });
    let refreshed = refreshed.await.unwrap();
    // B's invalidation comes late and must not throw away A's fresh T2.
    let b_invalidated = replica_b.invalidate_if(KEY, "T1").await.unwrap();
    let b_token = replica_b.get(KEY, || async { issue(&fetches, "T3", TWO_HOURS) });
    let b_token = b_token.await.unwrap();

    assert!(!stale);
    assert!(a_invalidated);
    assert!(!b_invalidated);
    assert_eq!((refreshed.as_str(), b_token.as_str()), ("T2", "T2"));
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

/// A replica that took the refresh lock and died: the others wait for the lock to lapse, then
/// one of them fetches.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_lock_holder_is_replaced_once_its_lock_lapses() {
    let backend = Backend::start(Kind::Redis).await;
    let [cache] = backend.token_caches();
    let mut redis = backend.redis.as_ref().unwrap().connection().await;
    redis::cmd("SET")
        .arg(format!("{PREFIX}:token:{KEY}:lock"))
        .arg("a replica that died")
        .arg("PX")
        .arg(500)
        .query_async::<()>(&mut redis)
        .await
        .unwrap();
    let fetches = AtomicUsize::new(0);
    let started = Instant::now();

    let token = cache.get(KEY, || async { issue(&fetches, "T1", TWO_HOURS) });
    let token = token.await.unwrap();

    let waited = started.elapsed();
    assert_eq!(token, "T1");
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert!(
        waited >= Duration::from_millis(400),
        "did not wait: {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
}

/// Keys hold the app id only; the cache never sees the secret (the caller's `fetch` does).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_token_lives_under_the_app_id_and_expires_with_the_token() {
    let backend = Backend::start(Kind::Redis).await;
    let [cache] = backend.token_caches();
    let fetches = AtomicUsize::new(0);
    let token = cache.get(KEY, || async { issue(&fetches, "T1", TWO_HOURS) });
    token.await.unwrap();

    let mut redis = backend.redis.as_ref().unwrap().connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut redis)
        .await
        .unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{PREFIX}:token:{KEY}"))
        .query_async(&mut redis)
        .await
        .unwrap();

    assert_eq!(
        keys,
        [format!("{PREFIX}:token:{KEY}")],
        "the lock is released"
    );
    assert!(ttl > 7_100_000 && ttl <= 7_200_000, "ttl {ttl}");
}
