//! The durable job queue behind asynchronous replies: a Redis stream with a consumer group, or in process.
//!
//! Delivery is at least once. A job handed to a consumer stays pending until it is acked or
//! dead-lettered; if its consumer goes silent for longer than the visibility timeout (killed,
//! OOM, rolling deploy) the next `next` call anywhere reclaims it, with `deliveries` one higher.
//! Workers keep long jobs theirs with `heartbeat` every visibility/3, and make their side
//! effects idempotent (a delivered-marker per job and chunk), because a reclaim after a worker
//! that was only slow means the job runs twice.
//!
//! Redis layout, under the `prefix` given to [`Queue::redis`]:
//!
//! - `{prefix}:jobs`: the stream; each entry has one field, `payload`. Acked entries are
//!   deleted, so the stream holds exactly the jobs not done yet.
//! - consumer group `workers` on it, created lazily and again whenever Redis lost it.
//! - `{prefix}:jobs:dead`: hash, job id → JSON `{payload, reason, failed_at_ms, deliveries}`.
//! - `{prefix}:jobs:dead:order`: sorted set of the same ids scored by `failed_at_ms`, for
//!   newest-first listing and for dropping the oldest beyond [`DEAD_LETTER_CAP`].

mod memory;
mod redis;

pub use self::memory::MemoryQueue;
pub use self::redis::RedisQueue;

use std::sync::Arc;
use std::time::Duration;

use crate::store::RedisConnection;

use crate::store::StoreError;

/// Dead letters kept for operators; beyond this the oldest are dropped, so a flood of poison
/// jobs cannot grow Redis without bound.
pub const DEAD_LETTER_CAP: usize = 10_000;

/// One job as a consumer receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The stream entry id (`<ms>-<seq>`); stable across reclaims, new on a dead-letter retry.
    pub id: String,
    /// JSON, opaque to the queue.
    pub payload: String,
    /// 1 on the first delivery, one more for each reclaim after a silent consumer.
    pub deliveries: u64,
    pub enqueued_at_ms: u64,
}

/// A job given up on, kept for an operator to inspect and replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The id the job had in the queue.
    pub id: String,
    pub payload: String,
    pub reason: String,
    pub failed_at_ms: u64,
    pub deliveries: u64,
}

/// For metrics and readiness: how far behind the workers are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Enqueued and not acked yet (waiting or in flight).
    pub pending: u64,
    /// How long ago the oldest of them was enqueued.
    pub oldest_age: Option<Duration>,
}

#[derive(Clone)]
pub enum Queue {
    Memory(Arc<MemoryQueue>),
    Redis(Arc<RedisQueue>),
}

impl Queue {
    /// The embedded queue: lost when the process ends, which in embedded mode also ends every
    /// worker that could have been owed a job.
    pub fn memory(visibility: Duration) -> Self {
        Queue::Memory(Arc::new(MemoryQueue::new(visibility)))
    }

    /// The shared queue. `connection` serves every short command; `client` opens the separate
    /// connections that `next` blocks on, so a waiting consumer never holds up `enqueue`, `ack`
    /// or anything else multiplexed on `connection`.
    pub fn redis(
        connection: RedisConnection,
        client: ::redis::Client,
        prefix: &str,
        visibility: Duration,
    ) -> Self {
        Queue::Redis(Arc::new(RedisQueue::new(
            connection, client, prefix, visibility,
        )))
    }

    /// How long a consumer may stay silent before its job is reclaimed.
    pub fn visibility(&self) -> Duration {
        match self {
            Queue::Memory(queue) => queue.visibility(),
            Queue::Redis(queue) => queue.visibility(),
        }
    }

    /// Adds a job; durable (in Redis) when this returns `Ok`. Returns the job id.
    pub async fn enqueue(&self, payload: &str) -> Result<String, StoreError> {
        match self {
            Queue::Memory(queue) => Ok(queue.enqueue(payload)),
            Queue::Redis(queue) => queue.enqueue(payload).await,
        }
    }

    /// The next job for `consumer` (a name unique to one worker): first one whose consumer has
    /// been silent longer than the visibility timeout, else a new one, waiting up to `block`
    /// for either. `None` when nothing came.
    pub async fn next(&self, consumer: &str, block: Duration) -> Result<Option<Job>, StoreError> {
        match self {
            Queue::Memory(queue) => Ok(queue.next(consumer, block).await),
            Queue::Redis(queue) => queue.next(consumer, block).await,
        }
    }

    /// Keeps a long job from being reclaimed while its worker is alive. `false`: the job is no
    /// longer this consumer's (reclaimed by another after a stall, acked, or lost with Redis),
    /// so the worker should stop sending for it.
    pub async fn heartbeat(&self, consumer: &str, job_id: &str) -> Result<bool, StoreError> {
        match self {
            Queue::Memory(queue) => Ok(queue.heartbeat(consumer, job_id)),
            Queue::Redis(queue) => queue.heartbeat(consumer, job_id).await,
        }
    }

    /// Done: the job leaves the queue for good.
    pub async fn ack(&self, job_id: &str) -> Result<(), StoreError> {
        match self {
            Queue::Memory(queue) => {
                queue.ack(job_id);
                Ok(())
            }
            Queue::Redis(queue) => queue.ack(job_id).await,
        }
    }

    /// Gives up on a job: records it as a dead letter with `reason`, then acks it, atomically.
    pub async fn dead_letter(&self, job: &Job, reason: &str) -> Result<(), StoreError> {
        match self {
            Queue::Memory(queue) => {
                queue.dead_letter(job, reason);
                Ok(())
            }
            Queue::Redis(queue) => queue.dead_letter(job, reason).await,
        }
    }

    /// Up to `limit` dead letters, newest first.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        match self {
            Queue::Memory(queue) => Ok(queue.dead_letters(limit)),
            Queue::Redis(queue) => queue.dead_letters(limit).await,
        }
    }

    pub async fn dead_letter_by_id(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        match self {
            Queue::Memory(queue) => Ok(queue.dead_letter_by_id(id)),
            Queue::Redis(queue) => queue.dead_letter_by_id(id).await,
        }
    }

    /// Re-enqueues a dead letter as a new job and forgets the dead letter, atomically (two
    /// operators retrying at once enqueue it once). The new job id; `None`: no such dead letter.
    pub async fn retry_dead_letter(&self, id: &str) -> Result<Option<String>, StoreError> {
        match self {
            Queue::Memory(queue) => Ok(queue.retry_dead_letter(id)),
            Queue::Redis(queue) => queue.retry_dead_letter(id).await,
        }
    }

    pub async fn depth(&self) -> Result<QueueDepth, StoreError> {
        match self {
            Queue::Memory(queue) => Ok(queue.depth()),
            Queue::Redis(queue) => queue.depth().await,
        }
    }
}
