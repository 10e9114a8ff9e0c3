//! The Redis side of the token cache: a hash per token, a `SET NX PX` lock per refresh.

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use crate::store::RedisConnection;
use redis::Script;
use tokio::time::{sleep, Instant};

use super::{refresh, Cached, Refreshed, TokenError, LOCK_TTL, WAIT_DEADLINE};
use crate::clock::{jittered, millis, random_id, unix_ms};
use crate::store::StoreError;

/// Pause between two looks while another replica refreshes.
const POLL: Duration = Duration::from_millis(50);

// Compare-and-delete: a lock that lapsed and was taken by another caller stays theirs.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

// Compare-and-delete on the token: one that another replica refreshed meanwhile is kept.
const INVALIDATE_IF: &str = r#"
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));
static INVALIDATE_IF_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(INVALIDATE_IF));

/// One key's token and lock in Redis.
pub(super) struct RedisTokens {
    connection: RedisConnection,
    key: String,
    lock: String,
}

impl RedisTokens {
    pub(super) fn new(connection: &RedisConnection, prefix: &str, key: &str) -> Self {
        RedisTokens {
            connection: connection.clone(),
            key: crate::keys::token(prefix, key),
            lock: crate::keys::token_lock(prefix, key),
        }
    }

    pub(super) async fn get<F, Fut>(&self, fetch: F) -> Result<String, TokenError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(String, Duration), TokenError>>,
    {
        let deadline = Instant::now() + WAIT_DEADLINE;
        loop {
            let current = self.read().await?;
            if let Some(cached) = current.as_ref().filter(|cached| cached.fresh(unix_ms())) {
                return Ok(cached.token.clone());
            }
            if let Some(owner) = self.try_lock().await? {
                let result = self.refresh_locked(fetch).await;
                self.release(&owner).await;
                return result;
            }
            if let Some(cached) = current.filter(|cached| cached.valid(unix_ms())) {
                return Ok(cached.token);
            }
            if Instant::now() >= deadline {
                return Err(TokenError::Timeout);
            }
            sleep(jittered(POLL, POLL / 2)).await;
        }
    }

    pub(super) async fn invalidate_if(&self, failed: &str) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let deleted: u8 = INVALIDATE_IF_SCRIPT
            .key(&self.key)
            .arg(failed)
            .invoke_async(&mut connection)
            .await?;
        Ok(deleted == 1)
    }

    async fn refresh_locked<F, Fut>(&self, fetch: F) -> Result<String, TokenError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(String, Duration), TokenError>>,
    {
        // The previous holder may have stored a fresh token just before releasing.
        let current = self.read().await?;
        if let Some(cached) = current.as_ref().filter(|cached| cached.fresh(unix_ms())) {
            return Ok(cached.token.clone());
        }
        let cached = match refresh(current, fetch).await? {
            Refreshed::New(cached) => cached,
            Refreshed::KeptValid(token) => return Ok(token),
        };
        if let Err(error) = self.write(&cached).await {
            // The token works; the next caller will find nothing cached and fetch again.
            tracing::warn!(%error, "could not cache the new access token");
        }
        Ok(cached.token)
    }

    async fn read(&self) -> Result<Option<Cached>, StoreError> {
        let mut connection = self.connection.clone();
        let (token, expires_at_ms, refresh_at_ms): (Option<String>, Option<u64>, Option<u64>) =
            redis::cmd("HMGET")
                .arg(&self.key)
                .arg("token")
                .arg("expires_at_ms")
                .arg("refresh_at_ms")
                .query_async(&mut connection)
                .await?;
        Ok(match (token, expires_at_ms, refresh_at_ms) {
            (Some(token), Some(expires_at_ms), Some(refresh_at_ms)) => Some(Cached {
                token,
                expires_at_ms,
                refresh_at_ms,
            }),
            // Missing, or written by something else: refetching repairs it.
            _ => None,
        })
    }

    async fn write(&self, cached: &Cached) -> Result<(), StoreError> {
        let ttl = cached.expires_at_ms.saturating_sub(unix_ms()).max(1);
        let mut connection = self.connection.clone();
        redis::pipe()
            .atomic()
            .del(&self.key)
            .ignore()
            .hset_multiple(
                &self.key,
                &[
                    ("token", cached.token.clone()),
                    ("expires_at_ms", cached.expires_at_ms.to_string()),
                    ("refresh_at_ms", cached.refresh_at_ms.to_string()),
                ],
            )
            .ignore()
            .pexpire(&self.key, ttl as i64)
            .ignore()
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }

    /// The lock's owner value when this caller now holds it.
    async fn try_lock(&self) -> Result<Option<String>, StoreError> {
        let owner = random_id();
        let mut connection = self.connection.clone();
        let reply: Option<String> = redis::cmd("SET")
            .arg(&self.lock)
            .arg(&owner)
            .arg("NX")
            .arg("PX")
            .arg(millis(LOCK_TTL))
            .query_async(&mut connection)
            .await?;
        Ok(reply.map(|_| owner))
    }

    /// Compare-and-delete: a lock that expired and was taken by another caller stays theirs.
    async fn release(&self, owner: &str) {
        let mut connection = self.connection.clone();
        let released: Result<u8, _> = RELEASE_SCRIPT
            .key(&self.lock)
            .arg(owner)
            .invoke_async(&mut connection)
            .await;
        if let Err(error) = released {
            // It expires within LOCK_TTL; until then others keep the valid token or wait.
            tracing::warn!(%error, "could not release the token refresh lock");
        }
    }
}
