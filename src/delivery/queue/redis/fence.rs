//! Writes a worker may make only while it still holds its job: Redis checks the job's owner in
//! the consumer group and writes in the same script, so a worker that stalled past the
//! visibility timeout (and lost its job to another) can neither store a second answer nor send
//! a part the new owner is sending.

use std::sync::LazyLock;

use redis::Script;

use super::{RedisQueue, GROUP};
use crate::core::PendingTurn;
use crate::delivery::millis;
use crate::delivery::queue::{Fenced, Job, PartClaim};
use crate::store::{append_turn_args, StoreError, APPEND_TURN_LUA};

const OWNER: &str = r#"
local function owns(stream, group, consumer, id)
  local pending = redis.call('XPENDING', stream, group, id, id, 1)
  return pending[1] ~= nil and pending[1][2] == consumer
end
"#;

// First writer wins: the reply is stored only if none is, and the conversation's memory gets
// the turn only with the reply that won. KEYS: stream, reply[, memory]. ARGV: group, consumer,
// entry id, text, TTL ms[, turn, turns kept, memory TTL s].
static STORE_REPLY_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{OWNER}{APPEND_TURN_LUA}
if not owns(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return {{0, false}} end
local stored = redis.call('GET', KEYS[2])
if stored then return {{2, stored}} end
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])
-- Only the run that stored the reply gets here, so the turn is new.
if #KEYS >= 3 then append_new_turn(KEYS[3], ARGV[6], ARGV[7], ARGV[8]) end
return {{1, ARGV[4]}}
"#
    ))
});

// 0: the job is no longer ours; 1: the part is ours to send; 2: already sent; 3: another
// worker is sending it. KEYS: stream, marker. ARGV: group, consumer, entry id, claim TTL ms.
static CLAIM_PART_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{OWNER}
if not owns(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
local marker = redis.call('GET', KEYS[2])
if marker == 'sent' then return 2 end
if marker and marker ~= ARGV[2] then return 3 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[4])
return 1
"#
    ))
});

impl RedisQueue {
    pub async fn store_reply(
        &self,
        consumer: &str,
        job: &Job,
        reply_key: &str,
        text: &str,
        ttl: std::time::Duration,
        remember: Option<&PendingTurn>,
    ) -> Result<Fenced<String>, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = STORE_REPLY_SCRIPT.prepare_invoke();
        invocation
            .key(&self.stream)
            .key(reply_key)
            .arg(GROUP)
            .arg(consumer)
            .arg(&job.id)
            .arg(text)
            .arg(millis(ttl));
        if let Some(pending) = remember {
            append_turn_args(
                &mut invocation,
                &pending.key,
                &pending.turn,
                pending.max_turns,
                pending.ttl,
            )?;
        }
        let (outcome, text): (u8, Option<String>) =
            invocation.invoke_async(&mut connection).await?;
        Ok(match (outcome, text) {
            (1 | 2, Some(text)) => Fenced::Held(text),
            _ => Fenced::Lost,
        })
    }

    pub async fn claim_part(
        &self,
        consumer: &str,
        job: &Job,
        marker: &str,
        ttl: std::time::Duration,
    ) -> Result<PartClaim, StoreError> {
        let mut connection = self.connection.clone();
        let claimed: u8 = CLAIM_PART_SCRIPT
            .key(&self.stream)
            .key(marker)
            .arg(GROUP)
            .arg(consumer)
            .arg(&job.id)
            .arg(millis(ttl))
            .invoke_async(&mut connection)
            .await?;
        Ok(match claimed {
            1 => PartClaim::Mine,
            2 => PartClaim::Sent,
            3 => PartClaim::Busy,
            _ => PartClaim::Lost,
        })
    }
}
