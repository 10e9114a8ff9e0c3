//! Platform access tokens shared by every replica: one per (platform, app, secret), refreshed single-flight.
//!
//! Why single-flight matters: WeChat's classic `cgi-bin/token` kills the previous token on
//! every fetch, so two replicas refreshing on their own break each other; WeCom intercepts
//! frequent `gettoken`. So exactly one caller fetches (the holder of a short lock), the others
//! keep using the current token while it is still valid, or wait for the new one.
//!
//! Keys name the platform and the app id, plus whatever tells two secrets of one app apart
//! (WeCom: agent id or `kf`), e.g. `wechat:wx123`, `wecom:ww1:1000002`. Never the secret.
//! Redis: `{prefix}:token:{key}` is a hash `{token, expires_at_ms, refresh_at_ms}` that expires
//! with the token; `{prefix}:token:{key}:lock` is the refresh lock.

mod redis;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::store::RedisConnection;
use tokio::time::timeout;

use self::redis::RedisTokens;
use crate::clock::{millis, unix_ms};
use crate::store::StoreError;

/// Refresh this long before expiry: WeChat's stable token and DingTalk's SDK both roll over
/// five minutes early, and a send must never leave with a token about to die.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// The refresh lock's lifetime: if its holder dies, another caller takes over after this.
pub const LOCK_TTL: Duration = Duration::from_secs(10);
/// How long a fetch may take; shorter than the lock, so a live holder never outlives it.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(8);
/// How long a caller with no valid token waits for another one's refresh; longer than the
/// lock, so a holder that died is replaced before waiters give up.
pub const WAIT_DEADLINE: Duration = Duration::from_secs(12);

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token cache: {0}")]
    Store(#[from] StoreError),
    /// From the caller's `fetch`; its text must never contain the secret.
    #[error("fetching the access token failed: {0}")]
    Fetch(String),
    #[error("timed out waiting for the access token")]
    Timeout,
}

#[derive(Clone)]
pub enum TokenCache {
    Memory(Arc<MemoryTokens>),
    Redis {
        connection: RedisConnection,
        prefix: String,
    },
}

#[derive(Default)]
pub struct MemoryTokens {
    tokens: Mutex<HashMap<String, Cached>>,
    /// One async lock per key: whoever holds it is the one fetching.
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cached {
    token: String,
    expires_at_ms: u64,
    refresh_at_ms: u64,
}

impl Cached {
    /// A token good until `expires_in` from now, due for refresh `REFRESH_MARGIN` before that,
    /// or halfway through its life when that is later: a platform handing out short tokens
    /// must not be asked again on every call.
    fn new(token: String, expires_in: Duration, now_ms: u64) -> Self {
        let lifetime = millis(expires_in);
        let fresh_for = lifetime
            .saturating_sub(millis(REFRESH_MARGIN))
            .max(lifetime / 2);
        Cached {
            token,
            expires_at_ms: now_ms.saturating_add(lifetime),
            refresh_at_ms: now_ms.saturating_add(fresh_for),
        }
    }

    fn fresh(&self, now_ms: u64) -> bool {
        now_ms < self.refresh_at_ms
    }

    fn valid(&self, now_ms: u64) -> bool {
        now_ms < self.expires_at_ms
    }
}

impl TokenCache {
    pub fn memory() -> Self {
        TokenCache::Memory(Arc::new(MemoryTokens::default()))
    }

    pub fn redis(connection: RedisConnection, prefix: &str) -> Self {
        TokenCache::Redis {
            connection,
            prefix: prefix.to_owned(),
        }
    }

    /// The token for `key`: the cached one while fresh, else one from `fetch` (returning the
    /// token and its `expires_in`), called by exactly one caller across all replicas at a time.
    /// Callers that lose the race keep the current token while it is valid, or wait up to
    /// [`WAIT_DEADLINE`] for the winner's. A failed refresh of a still-valid token returns the
    /// old token (the next call tries again).
    #[tracing::instrument(skip_all, fields(key = %key))]
    pub async fn get<F, Fut>(&self, key: &str, fetch: F) -> Result<String, TokenError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(String, Duration), TokenError>>,
    {
        match self {
            TokenCache::Memory(tokens) => tokens.get(key, fetch).await,
            TokenCache::Redis { connection, prefix } => {
                RedisTokens::new(connection, prefix, key).get(fetch).await
            }
        }
    }

    /// After the platform rejected `failed`: forgets the cached token only if it is still
    /// `failed`, so a token another replica has just refreshed is kept. True when forgotten.
    pub async fn invalidate_if(&self, key: &str, failed: &str) -> Result<bool, StoreError> {
        match self {
            TokenCache::Memory(tokens) => Ok(tokens.invalidate_if(key, failed)),
            TokenCache::Redis { connection, prefix } => {
                RedisTokens::new(connection, prefix, key)
                    .invalidate_if(failed)
                    .await
            }
        }
    }
}

/// What a refresh came to.
pub(super) enum Refreshed {
    /// A new token, to be cached.
    New(Cached),
    /// The fetch failed, but the current token still works.
    KeptValid(String),
}

/// Calls `fetch` within [`FETCH_TIMEOUT`]; on failure falls back to `current` while it is valid.
pub(super) async fn refresh<F, Fut>(
    current: Option<Cached>,
    fetch: F,
) -> Result<Refreshed, TokenError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(String, Duration), TokenError>>,
{
    let error = match timeout(FETCH_TIMEOUT, fetch()).await {
        Ok(Ok((token, expires_in))) => {
            tracing::info!(
                expires_in = expires_in.as_secs(),
                "fetched a new access token"
            );
            return Ok(Refreshed::New(Cached::new(token, expires_in, unix_ms())));
        }
        Ok(Err(error)) => error,
        Err(_) => TokenError::Timeout,
    };
    match current.filter(|cached| cached.valid(unix_ms())) {
        Some(cached) => {
            tracing::warn!(%error, "token refresh failed; the current token is still valid");
            Ok(Refreshed::KeptValid(cached.token))
        }
        None => Err(error),
    }
}

impl MemoryTokens {
    async fn get<F, Fut>(&self, key: &str, fetch: F) -> Result<String, TokenError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(String, Duration), TokenError>>,
    {
        let current = self.cached(key);
        if let Some(cached) = current.as_ref().filter(|cached| cached.fresh(unix_ms())) {
            return Ok(cached.token.clone());
        }
        let flight = Arc::clone(lock(&self.flights).entry(key.to_owned()).or_default());
        let _guard = match (flight.try_lock(), current) {
            (Ok(guard), _) => guard,
            // Someone is refreshing and the current token still works: use it meanwhile.
            (Err(_), Some(cached)) if cached.valid(unix_ms()) => return Ok(cached.token),
            (Err(_), _) => timeout(WAIT_DEADLINE, flight.lock())
                .await
                .map_err(|_| TokenError::Timeout)?,
        };
        // The previous holder may have stored a fresh token while this caller waited.
        let current = self.cached(key);
        if let Some(cached) = current.as_ref().filter(|cached| cached.fresh(unix_ms())) {
            return Ok(cached.token.clone());
        }
        match refresh(current, fetch).await? {
            Refreshed::New(cached) => {
                let token = cached.token.clone();
                lock(&self.tokens).insert(key.to_owned(), cached);
                Ok(token)
            }
            Refreshed::KeptValid(token) => Ok(token),
        }
    }

    fn cached(&self, key: &str) -> Option<Cached> {
        let mut tokens = lock(&self.tokens);
        let now = unix_ms();
        if tokens.get(key).is_some_and(|cached| !cached.valid(now)) {
            tokens.remove(key);
        }
        tokens.get(key).cloned()
    }

    fn invalidate_if(&self, key: &str, failed: &str) -> bool {
        let mut tokens = lock(&self.tokens);
        if tokens.get(key).is_some_and(|cached| cached.token == failed) {
            tokens.remove(key);
            return true;
        }
        false
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Maps updated by single inserts and removes: never left half-written by a panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_token_is_refreshed_five_minutes_early() {
        let cached = Cached::new("t".into(), Duration::from_secs(7200), 1_000);

        assert_eq!(cached.expires_at_ms, 1_000 + 7_200_000);
        assert_eq!(cached.refresh_at_ms, 1_000 + 6_900_000);
    }

    #[test]
    fn a_short_token_is_fresh_for_half_its_life() {
        let cached = Cached::new("t".into(), Duration::from_secs(200), 0);

        assert!(cached.fresh(99_999));
        assert!(!cached.fresh(100_000));
        assert!(cached.valid(199_999));
        assert!(!cached.valid(200_000));
    }

    #[tokio::test]
    async fn a_failed_fetch_with_nothing_cached_is_an_error_and_the_next_call_retries() {
        let cache = TokenCache::memory();

        let failed = cache
            .get("wechat:wx1", || async {
                Err(TokenError::Fetch("40013".into()))
            })
            .await;
        let token = cache
            .get("wechat:wx1", || async {
                Ok(("T1".to_owned(), Duration::from_secs(7200)))
            })
            .await
            .unwrap();

        assert!(matches!(failed, Err(TokenError::Fetch(_))));
        assert_eq!(token, "T1");
    }
}
