//! Dead letters in Redis: a hash of records and a sorted set for newest-first order, capped.

use std::sync::LazyLock;

use redis::Script;
use serde::{Deserialize, Serialize};

use super::order::{pass_turn_args, PASS_TURN};
use super::{RedisQueue, GROUP};
use crate::delivery::queue::{DeadLetter, Job, DEAD_LETTER_CAP};
use crate::delivery::unix_ms;
use crate::store::StoreError;

// Records, trims to the cap, acks and passes the conversation's turn in one step: a job given
// up on is never gone from the stream without being in the dead letters, and its conversation
// goes on. pcall: a group lost with Redis has nothing to ack. KEYS: stream, dead, dead order[,
// order, backlog]. ARGV: group, id, record, failed at, cap[, ticket, order TTL, order name].
const DEAD_LETTER: &str = r#"
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
local excess = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[5])
if excess > 0 then
  local oldest = redis.call('ZRANGE', KEYS[3], 0, excess - 1)
  redis.call('HDEL', KEYS[2], unpack(oldest))
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, excess - 1)
end
redis.pcall('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if #KEYS >= 5 then pass_turn(KEYS[1], KEYS[4], KEYS[5], ARGV[6], ARGV[7], ARGV[8]) end
return 1
"#;

// Only the caller whose HDEL removed the dead letter enqueues it.
const RETRY: &str = r#"
if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then return false end
redis.call('ZREM', KEYS[3], ARGV[1])
return redis.call('XADD', KEYS[1], '*', 'payload', ARGV[2])
"#;

static DEAD_LETTER_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{PASS_TURN}{DEAD_LETTER}")));
static RETRY_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RETRY));

/// A dead letter as stored in the hash (the id is the hash field).
#[derive(Serialize, Deserialize)]
struct Record {
    payload: String,
    reason: String,
    failed_at_ms: u64,
    deliveries: u64,
}

impl RedisQueue {
    pub async fn dead_letter(&self, job: &Job, reason: &str) -> Result<(), StoreError> {
        let record = Record {
            payload: job.payload.clone(),
            reason: reason.to_owned(),
            failed_at_ms: unix_ms(),
            deliveries: job.deliveries,
        };
        let json = serde_json::to_string(&record).map_err(|error| StoreError::Corrupt {
            key: self.dead.clone(),
            reason: crate::store::json_reason(&error),
        })?;
        let mut connection = self.connection.clone();
        let mut invocation = DEAD_LETTER_SCRIPT.prepare_invoke();
        invocation
            .key(&self.stream)
            .key(&self.dead)
            .key(&self.dead_order)
            .arg(GROUP)
            .arg(&job.id)
            .arg(json)
            .arg(record.failed_at_ms)
            .arg(DEAD_LETTER_CAP);
        pass_turn_args(&mut invocation, job);
        invocation.invoke_async::<()>(&mut connection).await?;
        Ok(())
    }

    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut connection = self.connection.clone();
        let ids: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(&self.dead_order)
            .arg(0)
            .arg(limit - 1)
            .query_async(&mut connection)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let records: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&self.dead)
            .arg(&ids)
            .query_async(&mut connection)
            .await?;
        // A dead letter retried between the two reads is simply not listed.
        ids.into_iter()
            .zip(records)
            .filter_map(|(id, record)| record.map(|record| self.parse(id, &record)))
            .collect()
    }

    pub async fn dead_letter_by_id(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        let mut connection = self.connection.clone();
        let record: Option<String> = redis::cmd("HGET")
            .arg(&self.dead)
            .arg(id)
            .query_async(&mut connection)
            .await?;
        record
            .map(|record| self.parse(id.to_owned(), &record))
            .transpose()
    }

    pub async fn retry_dead_letter(&self, id: &str) -> Result<Option<String>, StoreError> {
        let Some(dead) = self.dead_letter_by_id(id).await? else {
            return Ok(None);
        };
        let mut connection = self.connection.clone();
        let new_id: Option<String> = RETRY_SCRIPT
            .key(&self.stream)
            .key(&self.dead)
            .key(&self.dead_order)
            .arg(id)
            .arg(&dead.payload)
            .invoke_async(&mut connection)
            .await?;
        Ok(new_id)
    }

    fn parse(&self, id: String, record: &str) -> Result<DeadLetter, StoreError> {
        let record: Record = serde_json::from_str(record).map_err(|error| StoreError::Corrupt {
            key: format!("{} {id}", self.dead),
            reason: crate::store::json_reason(&error),
        })?;
        Ok(DeadLetter {
            id,
            payload: record.payload,
            reason: record.reason,
            failed_at_ms: record.failed_at_ms,
            deliveries: record.deliveries,
        })
    }
}
