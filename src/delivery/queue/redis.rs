//! The shared job queue: a Redis stream read through the consumer group `workers`, reclaimed with `XAUTOCLAIM`.
//!
//! Blocking reads get connections of their own. `XREADGROUP … BLOCK` holds the connection it
//! was sent on: Redis answers a connection's commands in order, so on the multiplexed
//! `ConnectionManager` every later command (an `enqueue` from a platform callback, an `ack`) would wait
//! behind the block, and its 2 s response timeout would fail the block itself. So `next` borrows
//! a dedicated connection from a small idle pool (one per consumer blocked at that moment,
//! reused by later calls, dropped on a transport error) and blocks there, in slices of at most
//! the visibility timeout so a job left by a dead worker is reclaimed on time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use crate::store::{DedicatedConnection, RedisConnection};
use redis::streams::StreamReadReply;
use redis::{RedisError, Script};

use super::{Job, QueueDepth, Ticket};
use crate::delivery::millis;
use crate::store::StoreError;

mod dead_letters;
mod fence;
mod order;

const GROUP: &str = "workers";
/// Longest single `BLOCK`: between two, `next` looks again for reclaimable jobs.
const BLOCK_SLICE_MAX: Duration = Duration::from_secs(5);
/// What a blocking connection allows Redis beyond the block itself before calling it dead.
const RESPONSE_MARGIN: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// `XAUTOCLAIM` steps per reclaim look (each inspects about ten pending entries): bounds the
/// script's run time while covering far more in-flight jobs than a fleet has workers.
const RECLAIM_STEPS: u32 = 64;
/// Stalled jobs are looked for at least this often (and at least every half visibility).
const RECLAIM_SCAN_EVERY: Duration = Duration::from_secs(2);
/// How many times one call recreates a consumer group that Redis lost before giving up.
const GROUP_ATTEMPTS: u32 = 3;

// Claims the oldest entry idle longer than ARGV[3] ms, with its delivery count (XAUTOCLAIM
// does not return it). Deleted entries (6.2 returns them as nil) are skipped.
const RECLAIM: &str = r#"
local cursor = '0-0'
for _ = 1, tonumber(ARGV[4]) do
  local reply = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], cursor, 'COUNT', 1)
  local entry = reply[2][1]
  if entry then
    local pending = redis.call('XPENDING', KEYS[1], ARGV[1], entry[1], entry[1], 1)
    local deliveries = 1
    if pending[1] then deliveries = pending[1][4] end
    return {entry[1], entry[2], deliveries}
  end
  cursor = reply[1]
  if cursor == '0-0' then return false end
end
return false
"#;

// Resets the idle time only while ARGV[2] still owns the entry: a plain XCLAIM would steal it
// back from a consumer that reclaimed it after this one stalled.
const HEARTBEAT: &str = r#"
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not pending[1] or pending[1][2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
"#;

// Age by Redis's clock, the same clock that stamped the entry ids.
const DEPTH: &str = r#"
local length = redis.call('XLEN', KEYS[1])
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if first then return {length, first[1], now} end
return {length, '', now}
"#;

static RECLAIM_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RECLAIM));
static HEARTBEAT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(HEARTBEAT));
static DEPTH_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(DEPTH));

pub struct RedisQueue {
    connection: RedisConnection,
    /// Idle connections for blocking reads; see the module docs.
    blocking: Mutex<Vec<DedicatedConnection>>,
    stream: String,
    /// Which shard this is, so its jobs say where to acknowledge them.
    shard: usize,
    dead: String,
    dead_order: String,
    visibility: Duration,
    /// When the pending list was last scanned for stalled jobs (ms on the process clock).
    last_reclaim_scan_ms: AtomicU64,
}

/// What one look at the stream found.
enum Found {
    Job(Job),
    /// An entry without a payload field: not ours to run, dead-lettered so it stops coming back.
    Unreadable {
        id: String,
        deliveries: u64,
    },
}

impl RedisQueue {
    pub fn new(
        connection: RedisConnection,
        prefix: &str,
        shard: usize,
        visibility: Duration,
    ) -> Self {
        RedisQueue {
            connection,
            blocking: Mutex::new(Vec::new()),
            stream: crate::keys::jobs(prefix),
            shard,
            dead: crate::keys::dead_jobs(prefix),
            dead_order: crate::keys::dead_jobs_order(prefix),
            visibility,
            last_reclaim_scan_ms: AtomicU64::new(0),
        }
    }

    pub fn visibility(&self) -> Duration {
        self.visibility
    }

    pub async fn enqueue(&self, payload: &str) -> Result<String, StoreError> {
        let mut connection = self.connection.clone();
        let id: String = redis::cmd("XADD")
            .arg(&self.stream)
            .arg("*")
            .arg("payload")
            .arg(payload)
            .query_async(&mut connection)
            .await?;
        Ok(id)
    }

    pub async fn next(&self, consumer: &str, block: Duration) -> Result<Option<Job>, StoreError> {
        let deadline = tokio::time::Instant::now() + block;
        let mut group_attempts = 0;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let slice = remaining.min(self.visibility).min(BLOCK_SLICE_MAX);
            let found = match self.reclaim_due().then_some(()) {
                Some(()) => match self.reclaim(consumer).await {
                    Ok(None) => self.read_new(consumer, slice).await,
                    found => {
                        // Found one: more may be stalled, so look again on the next call.
                        self.last_reclaim_scan_ms.store(0, Ordering::Relaxed);
                        found
                    }
                },
                None => self.read_new(consumer, slice).await,
            };
            match found {
                Ok(Some(Found::Job(job))) => return Ok(Some(job)),
                Ok(Some(Found::Unreadable { id, deliveries })) => {
                    tracing::warn!(job_id = %id, "stream entry without a payload; dead-lettered");
                    let job = Job {
                        id,
                        payload: String::new(),
                        deliveries,
                        enqueued_at_ms: 0,
                        order: None,
                        shard: self.shard,
                    };
                    self.dead_letter(&job, "stream entry has no payload field")
                        .await?;
                }
                Ok(None) if remaining.is_zero() => return Ok(None),
                Ok(None) => {}
                Err(error) if is_no_group(&error) && group_attempts < GROUP_ATTEMPTS => {
                    group_attempts += 1;
                    self.create_group().await?;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Creates the group from the stream's start: the stream holds only jobs not done yet
    /// (acks delete entries), so after Redis lost the group every entry in it is still owed,
    /// including those enqueued before the group existed again (`$` would skip them).
    async fn create_group(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let created: Result<(), RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut connection)
            .await;
        match created {
            Err(error) if error.code() != Some("BUSYGROUP") => Err(error.into()),
            _ => Ok(()),
        }
    }

    /// A scan of the pending list costs time in proportion to the jobs in flight, and stalled
    /// jobs are rare (a worker silent for the whole visibility timeout), so the pending list
    /// is scanned at most once per `RECLAIM_SCAN_EVERY` per process, not on every `next`.
    fn reclaim_due(&self) -> bool {
        let now = process_ms();
        let last = self.last_reclaim_scan_ms.load(Ordering::Relaxed);
        let every = millis(self.visibility.min(RECLAIM_SCAN_EVERY) / 2).max(1);
        now.saturating_sub(last) >= every
            && self
                .last_reclaim_scan_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    async fn reclaim(&self, consumer: &str) -> Result<Option<Found>, RedisError> {
        let mut connection = self.connection.clone();
        let claimed: Option<(String, Vec<String>, u64)> = RECLAIM_SCRIPT
            .key(&self.stream)
            .arg(GROUP)
            .arg(consumer)
            .arg(millis(self.visibility))
            .arg(RECLAIM_STEPS)
            .invoke_async(&mut connection)
            .await?;
        Ok(claimed.map(|(id, fields, deliveries)| {
            let field = |name: &str| {
                fields
                    .chunks_exact(2)
                    .find(|pair| pair[0] == name)
                    .map(|pair| pair[1].clone())
            };
            let order = ticket(field("order"), field("ticket"));
            found(self.shard, id, field("payload"), deliveries, order)
        }))
    }

    async fn read_new(&self, consumer: &str, block: Duration) -> Result<Option<Found>, RedisError> {
        let mut command = redis::cmd("XREADGROUP");
        command
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(1);
        // BLOCK 0 would mean forever; no BLOCK at all is a plain look.
        let block_ms = block.as_millis();
        if block_ms > 0 {
            command.arg("BLOCK").arg(block_ms as u64);
        }
        command.arg("STREAMS").arg(&self.stream).arg(">");

        let (mut connection, pooled) = self.blocking_connection().await?;
        let mut reply: Result<Option<StreamReadReply>, RedisError> =
            command.query_async(&mut connection).await;
        if pooled && reply.as_ref().is_err_and(|error| error.code().is_none()) {
            // An idle connection that Redis dropped (restart, idle timeout): the others in the
            // pool are likely stale too. Start over once on a fresh one.
            self.lock_pool().clear();
            connection = self.blocking_connection().await?.0;
            reply = command.query_async(&mut connection).await;
        }
        // A server's error reply leaves the connection sound; a timeout or I/O error may not.
        if reply
            .as_ref()
            .map_or_else(|error| error.code().is_some(), |_| true)
        {
            self.lock_pool().push(connection);
        }
        let entry = reply?
            .and_then(|reply| reply.keys.into_iter().next())
            .and_then(|key| key.ids.into_iter().next());
        Ok(entry.map(|entry| {
            let order = ticket(entry.get("order"), entry.get("ticket"));
            let payload = entry.get("payload");
            found(self.shard, entry.id, payload, 1, order)
        }))
    }

    /// An idle pooled connection (true) or a new one (false).
    async fn blocking_connection(&self) -> Result<(DedicatedConnection, bool), RedisError> {
        if let Some(connection) = self.lock_pool().pop() {
            return Ok((connection, true));
        }
        let connection = self
            .connection
            .dedicated(CONNECT_TIMEOUT, BLOCK_SLICE_MAX + RESPONSE_MARGIN)
            .await?;
        Ok((connection, false))
    }

    fn lock_pool(&self) -> std::sync::MutexGuard<'_, Vec<DedicatedConnection>> {
        // The pool is a plain list; a panic elsewhere cannot leave it inconsistent.
        self.blocking
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub async fn heartbeat(&self, consumer: &str, job_id: &str) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let owned: Result<u8, RedisError> = HEARTBEAT_SCRIPT
            .key(&self.stream)
            .arg(GROUP)
            .arg(consumer)
            .arg(job_id)
            .invoke_async(&mut connection)
            .await;
        match owned {
            Ok(owned) => Ok(owned == 1),
            // Redis lost the group (restart): the job went with it.
            Err(error) if is_no_group(&error) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    pub async fn depth(&self) -> Result<QueueDepth, StoreError> {
        let mut connection = self.connection.clone();
        let (pending, oldest_id, now_ms): (u64, String, u64) = DEPTH_SCRIPT
            .key(&self.stream)
            .invoke_async(&mut connection)
            .await?;
        let oldest_age = entry_ms(&oldest_id)
            .map(|enqueued_at| Duration::from_millis(now_ms.saturating_sub(enqueued_at)));
        Ok(QueueDepth {
            pending,
            oldest_age,
        })
    }
}

fn found(
    shard: usize,
    id: String,
    payload: Option<String>,
    deliveries: u64,
    order: Option<Ticket>,
) -> Found {
    match payload {
        Some(payload) => Found::Job(Job {
            enqueued_at_ms: entry_ms(&id).unwrap_or(0),
            id,
            payload,
            deliveries,
            order,
            shard,
        }),
        None => Found::Unreadable { id, deliveries },
    }
}

/// An entry's place in its conversation, when it was admitted in order.
fn ticket(order: Option<String>, ticket: Option<String>) -> Option<Ticket> {
    Some(Ticket {
        order: order?,
        ticket: ticket?,
    })
}

/// The milliseconds part of a stream id (`<ms>-<seq>`): when Redis added the entry.
fn entry_ms(id: &str) -> Option<u64> {
    id.split_once('-')?.0.parse().ok()
}

/// The group is gone: never created, or lost with the stream (Redis restarted without
/// persistence, someone deleted the key). Redis keeps the code on errors raised inside scripts.
fn is_no_group(error: &RedisError) -> bool {
    error.code() == Some("NOGROUP")
}

/// Milliseconds on a monotonic clock local to this process.
fn process_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_carry_their_time() {
        assert_eq!(entry_ms("1700000000123-4"), Some(1_700_000_000_123));
        assert_eq!(entry_ms(""), None);
        assert_eq!(entry_ms("garbage"), None);
    }
}
