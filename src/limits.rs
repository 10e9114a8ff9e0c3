//! Limits shared by all replicas: fixed-window rates (messages per user) and leased concurrency slots (LLM calls per bot).
//!
//! Redis: `{prefix}:rate:{key}` is a counter that expires with its window;
//! `{prefix}:slots:{key}` is a sorted set of holder ids scored by lease expiry (Redis's clock),
//! so the slot of a replica that died frees itself when its lease runs out.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use crate::store::RedisConnection;
use redis::Script;
use tokio::time::{sleep, Instant};

use crate::clock::{jittered, millis, random_id};
use crate::store::StoreError;

/// Pause between two tries in [`Limits::acquire_wait`], plus up to as much again at random.
const WAIT_POLL: Duration = Duration::from_millis(25);
/// Sweep expired in-process entries every so many operations.
const SWEEP_EVERY: usize = 4096;

// A window is a sorted set of the events counted in it, each scored with its place. Counting
// the same event again (a platform's retry of one message, a replay of this script after a
// dropped connection) returns its first verdict. Events beyond `max` are refused without being
// stored, so the set never holds more than `max` members. PTTL < 0 also repairs a window that
// somehow lost its expiry, which would refuse forever.
const ALLOW: &str = r#"
local place = redis.call('ZSCORE', KEYS[1], ARGV[2])
if place then return tonumber(place) <= tonumber(ARGV[3]) and 1 or 0 end
local count = redis.call('ZCARD', KEYS[1])
if count >= tonumber(ARGV[3]) then
  if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
  return 0
end
redis.call('ZADD', KEYS[1], count + 1, ARGV[2])
if count == 0 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
"#;

// Leases by Redis's clock, so replicas with skewed clocks agree on what has expired.
const ACQUIRE: &str = r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"#;

// A lease that already ran out is lost (its slot may be someone else's now), not extended.
const RENEW: &str = r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expires or tonumber(expires) <= now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"#;

static ALLOW_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ALLOW));
static ACQUIRE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ACQUIRE));
static RENEW_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RENEW));

#[derive(Clone)]
pub enum Limits {
    Memory(Arc<Mutex<MemoryLimits>>),
    Redis {
        connection: RedisConnection,
        prefix: String,
    },
}

#[derive(Default)]
pub struct MemoryLimits {
    /// Key → (the events counted in the current window, in order, when the window ends).
    windows: HashMap<String, (Vec<String>, Instant)>,
    /// Key → holder → lease expiry.
    slots: HashMap<String, HashMap<String, Instant>>,
    operations: usize,
}

/// One held concurrency slot. Release it when done; dropping it releases it too (in the
/// background for Redis), and the lease frees it if the process dies.
pub struct Slot {
    limits: Limits,
    key: String,
    holder: String,
    lease: Duration,
    released: bool,
}

impl Limits {
    pub fn memory() -> Self {
        Limits::Memory(Arc::new(Mutex::new(MemoryLimits::default())))
    }

    pub fn redis(connection: RedisConnection, prefix: &str) -> Self {
        Limits::Redis {
            connection,
            prefix: prefix.to_owned(),
        }
    }

    /// Fixed window: true while `event` is one of the first `max` distinct events for `key` in
    /// the current `window` (the window starts with its first event). Asking again about the
    /// same event gives the same answer and counts nothing.
    pub async fn allow(
        &self,
        key: &str,
        event: &str,
        max: u32,
        window: Duration,
    ) -> Result<bool, StoreError> {
        let prefix = match self {
            Limits::Redis { prefix, .. } => prefix.as_str(),
            Limits::Memory(_) => "",
        };
        self.allow_in(prefix, key, event, max, window).await
    }

    /// [`Limits::allow`] with the window kept under `prefix`: a user's limit in the user's
    /// shard (see `keyspace.rs`), so that limits spread over a cluster with the users.
    pub async fn allow_in(
        &self,
        prefix: &str,
        key: &str,
        event: &str,
        max: u32,
        window: Duration,
    ) -> Result<bool, StoreError> {
        match self {
            Limits::Memory(memory) => {
                Ok(lock(memory).allow(key, event, max, window, Instant::now()))
            }
            Limits::Redis { connection, .. } => {
                let mut connection = connection.clone();
                let allowed: u8 = ALLOW_SCRIPT
                    .key(crate::keys::rate(prefix, key))
                    .arg(millis(window))
                    .arg(event)
                    .arg(max)
                    .invoke_async(&mut connection)
                    .await?;
                Ok(allowed == 1)
            }
        }
    }

    /// One of `max` slots for `key`, held for `lease` unless renewed; `None` when all are taken.
    pub async fn acquire(
        &self,
        key: &str,
        max: u32,
        lease: Duration,
    ) -> Result<Option<Slot>, StoreError> {
        let holder = random_id();
        let acquired = match self {
            Limits::Memory(memory) => {
                lock(memory).acquire(key, &holder, max, lease, Instant::now())
            }
            Limits::Redis { connection, prefix } => {
                let mut connection = connection.clone();
                let acquired: u8 = ACQUIRE_SCRIPT
                    .key(slots_key(prefix, key))
                    .arg(max)
                    .arg(millis(lease))
                    .arg(&holder)
                    .invoke_async(&mut connection)
                    .await?;
                acquired == 1
            }
        };
        Ok(acquired.then(|| Slot {
            limits: self.clone(),
            key: key.to_owned(),
            holder,
            lease,
            released: false,
        }))
    }

    /// [`Self::acquire`], trying again every few tens of milliseconds (jittered, so waiting
    /// replicas don't collide) until `deadline`. `None` when no slot freed up in time.
    pub async fn acquire_wait(
        &self,
        key: &str,
        max: u32,
        lease: Duration,
        deadline: Instant,
    ) -> Result<Option<Slot>, StoreError> {
        loop {
            if let Some(slot) = self.acquire(key, max, lease).await? {
                return Ok(Some(slot));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            sleep(jittered(WAIT_POLL, WAIT_POLL).min(deadline - now)).await;
        }
    }
}

fn slots_key(prefix: &str, key: &str) -> String {
    crate::keys::slots(prefix, key)
}

fn lock(memory: &Mutex<MemoryLimits>) -> MutexGuard<'_, MemoryLimits> {
    // Counters and sets updated in single steps: never left half-written by a panic.
    memory
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryLimits {
    fn sweep(&mut self, now: Instant) {
        self.operations += 1;
        if self.operations % SWEEP_EVERY != 0 {
            return;
        }
        self.windows.retain(|_, (_, ends)| *ends > now);
        self.slots.retain(|_, holders| {
            holders.retain(|_, expires| *expires > now);
            !holders.is_empty()
        });
    }

    fn allow(&mut self, key: &str, event: &str, max: u32, window: Duration, now: Instant) -> bool {
        self.sweep(now);
        let (events, ends) = self
            .windows
            .entry(key.to_owned())
            .or_insert((Vec::new(), now + window));
        if *ends <= now {
            events.clear();
            *ends = now + window;
        }
        if events.iter().any(|counted| counted == event) {
            return true;
        }
        if events.len() >= max as usize {
            return false;
        }
        events.push(event.to_owned());
        true
    }

    fn acquire(
        &mut self,
        key: &str,
        holder: &str,
        max: u32,
        lease: Duration,
        now: Instant,
    ) -> bool {
        self.sweep(now);
        let holders = self.slots.entry(key.to_owned()).or_default();
        holders.retain(|_, expires| *expires > now);
        if holders.len() >= max as usize {
            return false;
        }
        holders.insert(holder.to_owned(), now + lease);
        true
    }

    fn renew(&mut self, key: &str, holder: &str, lease: Duration, now: Instant) -> bool {
        let Some(holders) = self.slots.get_mut(key) else {
            return false;
        };
        match holders.get_mut(holder) {
            Some(expires) if *expires > now => {
                *expires = now + lease;
                true
            }
            _ => {
                holders.remove(holder);
                false
            }
        }
    }

    fn release(&mut self, key: &str, holder: &str) {
        if let Some(holders) = self.slots.get_mut(key) {
            holders.remove(holder);
        }
    }
}

impl Slot {
    /// Extends the lease by another `lease` from now, for calls that run long. `false`: the
    /// lease had already run out and the slot is lost (stop, or acquire again).
    pub async fn renew(&self) -> Result<bool, StoreError> {
        match &self.limits {
            Limits::Memory(memory) => {
                Ok(lock(memory).renew(&self.key, &self.holder, self.lease, Instant::now()))
            }
            Limits::Redis { connection, prefix } => {
                let mut connection = connection.clone();
                let renewed: u8 = RENEW_SCRIPT
                    .key(slots_key(prefix, &self.key))
                    .arg(&self.holder)
                    .arg(millis(self.lease))
                    .invoke_async(&mut connection)
                    .await?;
                Ok(renewed == 1)
            }
        }
    }

    /// Frees the slot now.
    pub async fn release(mut self) -> Result<(), StoreError> {
        self.released = true;
        match &self.limits {
            Limits::Memory(memory) => {
                lock(memory).release(&self.key, &self.holder);
                Ok(())
            }
            Limits::Redis { connection, prefix } => {
                release_redis(
                    connection.clone(),
                    slots_key(prefix, &self.key),
                    &self.holder,
                )
                .await
            }
        }
    }
}

async fn release_redis(
    mut connection: RedisConnection,
    key: String,
    holder: &str,
) -> Result<(), StoreError> {
    redis::cmd("ZREM")
        .arg(key)
        .arg(holder)
        .query_async::<()>(&mut connection)
        .await?;
    Ok(())
}

impl Drop for Slot {
    /// A worker that returns early (`?`) or panics must not keep its slot for the whole lease.
    fn drop(&mut self) {
        if self.released {
            return;
        }
        match &self.limits {
            Limits::Memory(memory) => lock(memory).release(&self.key, &self.holder),
            Limits::Redis { connection, prefix } => {
                // Outside a runtime (shutdown) there is nothing to run it on; the lease expires.
                if tokio::runtime::Handle::try_current().is_err() {
                    return;
                }
                let connection = connection.clone();
                let key = slots_key(prefix, &self.key);
                let holder = std::mem::take(&mut self.holder);
                crate::spawn_traced(async move {
                    if let Err(error) = release_redis(connection, key, &holder).await {
                        tracing::warn!(%error, "could not release a dropped slot; its lease will free it");
                    }
                });
            }
        }
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Slot")
            .field("key", &self.key)
            .field("holder", &self.holder)
            .field("lease", &self.lease)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_millis(100);

    #[tokio::test]
    async fn a_window_allows_max_events_then_resets() {
        let limits = Limits::memory();
        let mut allowed = Vec::new();
        for event in ["m1", "m2", "m3", "m4", "m1", "m4"] {
            allowed.push(limits.allow("user", event, 3, WINDOW).await.unwrap());
        }
        tokio::time::sleep(WINDOW).await;

        assert_eq!(allowed, [true, true, true, false, true, false]);
        assert!(limits.allow("user", "m5", 3, WINDOW).await.unwrap());
        assert!(limits.allow("other", "m1", 3, WINDOW).await.unwrap());
    }

    #[tokio::test]
    async fn dropping_a_slot_frees_it_and_a_lapsed_lease_cannot_be_renewed() {
        let limits = Limits::memory();
        let first = limits.acquire("bot", 1, WINDOW).await.unwrap().unwrap();
        assert!(limits.acquire("bot", 1, WINDOW).await.unwrap().is_none());
        drop(first);
        let second = limits.acquire("bot", 1, WINDOW).await.unwrap().unwrap();

        tokio::time::sleep(WINDOW).await;

        assert!(!second.renew().await.unwrap());
        assert!(limits.acquire("bot", 1, WINDOW).await.unwrap().is_some());
    }
}
