//! The durable job queue behind asynchronous replies: a Redis stream with a consumer group, or in process.
//!
//! Delivery is at least once. A job handed to a consumer stays pending until it is acked or
//! dead-lettered; if its consumer goes silent for longer than the visibility timeout (killed,
//! OOM, rolling deploy) the next `next` call anywhere reclaims it, with `deliveries` one higher.
//! Workers keep long jobs theirs with `heartbeat` every visibility/3, and make their side
//! effects idempotent (a delivered-marker per job and chunk), because a reclaim after a worker
//! that was only slow means the job runs twice.
//!
//! Redis layout, under each shard's prefix (see `keyspace.rs`; with one shard, `store.key_prefix`):
//!
//! - `{prefix}:jobs`: the stream; each entry has the field `payload`, and `order` and `ticket`
//!   when it keeps its place in a conversation. Acked entries are deleted, so the stream holds
//!   exactly the jobs not done yet.
//! - `{order}` and `{order}:backlog` per conversation: which job has the conversation's turn,
//!   and the jobs waiting behind it (see `redis/order.rs`). Only the job whose turn it is sits
//!   in the stream, so a busy conversation holds at most one worker.
//! - consumer group `workers` on it, created lazily and again whenever Redis lost it.
//! - `{prefix}:jobs:dead`: hash, job id → JSON `{payload, reason, failed_at_ms, deliveries}`.
//! - `{prefix}:jobs:dead:order`: sorted set of the same ids scored by `failed_at_ms`, for
//!   newest-first listing and for dropping the oldest beyond [`DEAD_LETTER_CAP`].
//!
//! Each shard has a stream of its own, next to its conversations' keys, because the scripts
//! that admit, fence and acknowledge a job touch both. With several shards a job id is only
//! unique within its shard, so operators see dead letters as `{shard}/{id}`.

mod memory;
mod redis;

pub use self::memory::MemoryQueue;
pub use self::redis::RedisQueue;

use std::sync::Arc;
use std::time::Duration;

use crate::core::PendingTurn;
use crate::keyspace::KeySpace;
use crate::store::{MemoryStore, RedisConnection, StoreError};

/// Dead letters kept for operators; beyond this the oldest are dropped, so a flood of poison
/// jobs cannot grow Redis without bound.
pub const DEAD_LETTER_CAP: usize = 10_000;

/// Per-conversation order state outlives any job still waiting in it.
pub const ORDER_TTL: Duration = Duration::from_secs(48 * 3600);

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
    /// Its conversation's order, for a job admitted in order: ending the job passes the turn.
    pub order: Option<Ticket>,
    /// The shard whose stream holds it; its conversation's keys are in the same shard.
    pub shard: usize,
}

/// A job's place in a conversation: the order it belongs to and its own ticket in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The conversation's order key (its storage name).
    pub order: String,
    /// 128 random bits in hex, unique to the job.
    pub ticket: String,
}

/// What [`Queue::admit`] did with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// Claimed and queued (in the stream, or behind its conversation's job); the ticket.
    Enqueued(String),
    /// The claim was held already: a platform retry or a redelivery. Nothing was queued.
    Duplicate,
}

/// A write made only while the worker still holds its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fenced<T> {
    /// Still ours: the value to go on with.
    Held(T),
    /// The job was taken over (or finished) by another worker: stop.
    Lost,
}

/// Who sends one part of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartClaim {
    /// This worker: send it, then mark it sent.
    Mine,
    /// It went out already.
    Sent,
    /// Another worker is sending it right now (it held the job before this one).
    Busy,
    /// The job is no longer this worker's: stop.
    Lost,
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
    /// One per shard.
    Redis(Arc<[RedisQueue]>),
}

impl Queue {
    /// The embedded queue: lost when the process ends, which in embedded mode also ends every
    /// worker that could have been owed a job. Claims, replies and sent-markers live in
    /// `store`, as they live in Redis beside the stream.
    pub fn memory(visibility: Duration, store: MemoryStore) -> Self {
        Queue::Memory(Arc::new(MemoryQueue::new(visibility, store)))
    }

    /// The shared queue, a stream per shard of `keys`. `connection` serves every short
    /// command and opens the separate connections that `next` blocks on, so a waiting consumer
    /// never holds up `enqueue`, `ack` or anything else multiplexed on `connection`.
    pub fn redis(connection: RedisConnection, keys: &KeySpace, visibility: Duration) -> Self {
        Queue::Redis(
            (0..keys.shard_count())
                .map(|shard| {
                    RedisQueue::new(connection.clone(), keys.shard(shard), shard, visibility)
                })
                .collect(),
        )
    }

    /// How long a consumer may stay silent before its job is reclaimed.
    pub fn visibility(&self) -> Duration {
        match self {
            Queue::Memory(queue) => queue.visibility(),
            Queue::Redis(shards) => shards[0].visibility(),
        }
    }

    /// How many streams there are to take jobs from (`next` takes a shard).
    pub fn shards(&self) -> usize {
        match self {
            Queue::Memory(_) => 1,
            Queue::Redis(shards) => shards.len(),
        }
    }

    fn shard(shards: &[RedisQueue], shard: usize) -> &RedisQueue {
        &shards[shard % shards.len()]
    }

    /// Claims `claim` (a platform message id, held for `claim_ttl`) and queues the job in its
    /// conversation's `order`, atomically: durable (in Redis) when this returns `Ok`. A job
    /// goes into the stream when its conversation is idle, else behind the conversation's
    /// last job; safe to run twice with the same ticket. `shard` is the conversation's.
    pub async fn admit(
        &self,
        shard: usize,
        claim: &str,
        claim_ttl: Duration,
        order: &str,
        ticket: &str,
        payload: &str,
    ) -> Result<Admitted, StoreError> {
        match self {
            Queue::Memory(queue) => Ok(queue.admit(claim, claim_ttl, order, ticket, payload)),
            Queue::Redis(shards) => {
                Self::shard(shards, shard)
                    .admit(claim, claim_ttl, order, ticket, payload)
                    .await
            }
        }
    }

    /// Adds a job outside any conversation's order; durable (in Redis) when this returns `Ok`.
    /// Returns the job id.
    pub async fn enqueue(&self, shard: usize, payload: &str) -> Result<String, StoreError> {
        match self {
            Queue::Memory(queue) => Ok(queue.enqueue(payload)),
            Queue::Redis(shards) => Self::shard(shards, shard).enqueue(payload).await,
        }
    }

    /// The next job for `consumer` (a name unique to one worker): first one whose consumer has
    /// been silent longer than the visibility timeout, else a new one, waiting up to `block`
    /// for either, from `shard`'s stream. `None` when nothing came.
    pub async fn next(
        &self,
        shard: usize,
        consumer: &str,
        block: Duration,
    ) -> Result<Option<Job>, StoreError> {
        match self {
            Queue::Memory(queue) => Ok(queue.next(consumer, block).await),
            Queue::Redis(shards) => Self::shard(shards, shard).next(consumer, block).await,
        }
    }

    /// Keeps a long job from being reclaimed while its worker is alive. `false`: the job is no
    /// longer this consumer's (reclaimed by another after a stall, acked, or lost with Redis),
    /// so the worker should stop sending for it.
    pub async fn heartbeat(
        &self,
        consumer: &str,
        shard: usize,
        job_id: &str,
    ) -> Result<bool, StoreError> {
        match self {
            Queue::Memory(queue) => Ok(queue.heartbeat(consumer, job_id)),
            Queue::Redis(shards) => Self::shard(shards, shard).heartbeat(consumer, job_id).await,
        }
    }

    /// Done: the job leaves the queue for good, and its conversation's next job gets the turn.
    pub async fn ack(&self, job: &Job) -> Result<(), StoreError> {
        match self {
            Queue::Memory(queue) => {
                queue.ack(job);
                Ok(())
            }
            Queue::Redis(shards) => Self::shard(shards, job.shard).ack(job).await,
        }
    }

    /// Stores the reply to `job` under `reply_key` unless one is stored (first writer wins),
    /// with the conversation's turn when it won, while `consumer` still holds the job. Returns
    /// the reply to deliver: this one, or the one stored first.
    pub async fn store_reply(
        &self,
        consumer: &str,
        job: &Job,
        reply_key: &str,
        text: &str,
        ttl: Duration,
        remember: Option<&PendingTurn>,
    ) -> Result<Fenced<String>, StoreError> {
        match self {
            Queue::Memory(queue) => {
                Ok(queue.store_reply(consumer, job, reply_key, text, ttl, remember))
            }
            Queue::Redis(shards) => {
                Self::shard(shards, job.shard)
                    .store_reply(consumer, job, reply_key, text, ttl, remember)
                    .await
            }
        }
    }

    /// Claims the send of one part (its `marker`) for `ttl`, while `consumer` holds the job.
    /// Claiming again refreshes the claim.
    pub async fn claim_part(
        &self,
        consumer: &str,
        job: &Job,
        marker: &str,
        ttl: Duration,
    ) -> Result<PartClaim, StoreError> {
        match self {
            Queue::Memory(queue) => Ok(queue.claim_part(consumer, job, marker, ttl)),
            Queue::Redis(shards) => {
                Self::shard(shards, job.shard)
                    .claim_part(consumer, job, marker, ttl)
                    .await
            }
        }
    }

    /// Gives up on a job: records it as a dead letter with `reason`, then acks it, atomically.
    pub async fn dead_letter(&self, job: &Job, reason: &str) -> Result<(), StoreError> {
        match self {
            Queue::Memory(queue) => {
                queue.dead_letter(job, reason);
                Ok(())
            }
            Queue::Redis(shards) => {
                Self::shard(shards, job.shard)
                    .dead_letter(job, reason)
                    .await
            }
        }
    }

    /// Up to `limit` dead letters, newest first (across the shards).
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let shards = match self {
            Queue::Memory(queue) => return Ok(queue.dead_letters(limit)),
            Queue::Redis(shards) => shards,
        };
        let mut letters = Vec::new();
        for (shard, queue) in shards.iter().enumerate() {
            for mut letter in queue.dead_letters(limit).await? {
                letter.id = public_id(shards.len(), shard, &letter.id);
                letters.push(letter);
            }
        }
        letters.sort_by_key(|letter| std::cmp::Reverse(letter.failed_at_ms));
        letters.truncate(limit);
        Ok(letters)
    }

    pub async fn dead_letter_by_id(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        let shards = match self {
            Queue::Memory(queue) => return Ok(queue.dead_letter_by_id(id)),
            Queue::Redis(shards) => shards,
        };
        let Some((shard, local)) = local_id(shards.len(), id) else {
            return Ok(None);
        };
        let letter = shards[shard].dead_letter_by_id(local).await?;
        Ok(letter.map(|letter| DeadLetter {
            id: id.to_owned(),
            ..letter
        }))
    }

    /// Re-enqueues a dead letter as a new job and forgets the dead letter, atomically (two
    /// operators retrying at once enqueue it once). The new job id; `None`: no such dead letter.
    pub async fn retry_dead_letter(&self, id: &str) -> Result<Option<String>, StoreError> {
        let shards = match self {
            Queue::Memory(queue) => return Ok(queue.retry_dead_letter(id)),
            Queue::Redis(shards) => shards,
        };
        let Some((shard, local)) = local_id(shards.len(), id) else {
            return Ok(None);
        };
        let retried = shards[shard].retry_dead_letter(local).await?;
        Ok(retried.map(|new_id| public_id(shards.len(), shard, &new_id)))
    }

    /// Summed over the shards; the oldest of them all.
    pub async fn depth(&self) -> Result<QueueDepth, StoreError> {
        let shards = match self {
            Queue::Memory(queue) => return Ok(queue.depth()),
            Queue::Redis(shards) => shards,
        };
        let mut total = QueueDepth::default();
        for queue in shards.iter() {
            let depth = queue.depth().await?;
            total.pending += depth.pending;
            total.oldest_age = total.oldest_age.max(depth.oldest_age);
        }
        Ok(total)
    }
}

/// A job id as operators see it: the stream id, led by its shard when there are several.
fn public_id(shards: usize, shard: usize, id: &str) -> String {
    match shards {
        1 => id.to_owned(),
        _ => format!("{shard}/{id}"),
    }
}

/// The shard and stream id behind an id from [`public_id`].
fn local_id(shards: usize, id: &str) -> Option<(usize, &str)> {
    if shards == 1 {
        return Some((0, id));
    }
    let (shard, local) = id.split_once('/')?;
    let shard = shard.parse().ok().filter(|&shard| shard < shards)?;
    Some((shard, local))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharded_job_ids_lead_with_their_shard() {
        assert_eq!(public_id(1, 0, "1-0"), "1-0");
        assert_eq!(public_id(4, 3, "1-0"), "3/1-0");
        assert_eq!(local_id(4, "3/1-0"), Some((3, "1-0")));
        assert_eq!(local_id(1, "1-0"), Some((0, "1-0")));
        assert_eq!(local_id(4, "4/1-0"), None, "no such shard");
        assert_eq!(local_id(4, "1-0"), None, "no shard named");
    }
}
