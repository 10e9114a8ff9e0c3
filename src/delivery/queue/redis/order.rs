//! Per-conversation order in Redis: only the job whose turn it is sits in the stream; the rest
//! wait in the conversation's backlog, costing no worker and no polling, and the job that
//! completes hands the turn to the next in the same script that acknowledges it.
//!
//! `{order}` holds `"<ticket> <stream id>"` of the job that has the turn; `{order}:backlog` is a
//! list of `"<ticket> <payload>"`. Both go when the conversation falls idle.

use std::sync::LazyLock;

use redis::Script;

use super::{RedisQueue, GROUP};
use crate::delivery::millis;
use crate::delivery::queue::{Admitted, Job, ORDER_TTL};
use crate::store::StoreError;

/// Lua shared by every script that ends a job (ack, dead letter): when the job held its
/// conversation's turn, the next job of the backlog goes into the stream, or the conversation
/// falls idle. KEYS: stream, order, backlog. ARGV[1..3]: the job's ticket, the order TTL in
/// ms, the order's name (stored in the entry so whoever ends the job finds the keys).
pub(super) const PASS_TURN: &str = r#"
local function pass_turn(stream, order, backlog, ticket, ttl, name)
  local active = redis.call('GET', order)
  if not active or string.sub(active, 1, #ticket + 1) ~= ticket .. ' ' then return end
  local item = redis.call('LPOP', backlog)
  if not item then
    redis.call('DEL', order)
    return
  end
  local space = string.find(item, ' ', 1, true)
  local next_ticket = string.sub(item, 1, space - 1)
  local id = redis.call('XADD', stream, '*', 'payload', string.sub(item, space + 1),
    'order', name, 'ticket', next_ticket)
  redis.call('SET', order, next_ticket .. ' ' .. id, 'PX', ttl)
end
"#;

// Claims the platform message id, then gives the job the conversation's turn (into the stream)
// or a place in its backlog, atomically: a claim never exists without its job. KEYS: claim,
// order, backlog, stream. ARGV: ticket, claim TTL ms, order TTL ms, payload, order name.
// The claim holds the ticket, so this very call replayed after a dropped connection is
// recognised and reports what it did the first time. Claim and order are read with one MGET
// (the order is read even for a duplicate, and ignored): both are plain strings, so MGET
// answers exactly what two GETs would.
const ADMIT: &str = r#"
local read = redis.call('MGET', KEYS[1], KEYS[2])
local held, active = read[1], read[2]
if held then return held == ARGV[1] and 1 or 0 end
if active then
  local entry = string.match(active, ' (.+)$')
  -- The job with the turn left the stream without passing it on (deleted by hand, lost by
  -- Redis): the conversation is idle again rather than stuck behind it forever.
  if not entry or #redis.call('XRANGE', KEYS[4], entry, entry) == 0 then active = false end
end
if active then
  redis.call('RPUSH', KEYS[3], ARGV[1] .. ' ' .. ARGV[4])
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
else
  local ticket, payload = ARGV[1], ARGV[4]
  local waiting = redis.call('LPOP', KEYS[3])
  if waiting then
    redis.call('RPUSH', KEYS[3], ARGV[1] .. ' ' .. ARGV[4])
    redis.call('PEXPIRE', KEYS[3], ARGV[3])
    local space = string.find(waiting, ' ', 1, true)
    ticket, payload = string.sub(waiting, 1, space - 1), string.sub(waiting, space + 1)
  end
  local id = redis.call('XADD', KEYS[4], '*', 'payload', payload, 'order', ARGV[5], 'ticket', ticket)
  redis.call('SET', KEYS[2], ticket .. ' ' .. id, 'PX', ARGV[3])
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"#;

// Acknowledges and deletes the entry, then passes the conversation's turn. pcall: a group lost
// with a Redis restart has nothing to ack; the entry goes all the same. KEYS: stream[, order,
// backlog]. ARGV: group, entry id[, ticket, order TTL ms, order name].
static COMPLETE_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{PASS_TURN}
redis.pcall('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if #KEYS >= 3 then pass_turn(KEYS[1], KEYS[2], KEYS[3], ARGV[3], ARGV[4], ARGV[5]) end
return 1
"#
    ))
});

static ADMIT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ADMIT));

fn backlog_key(order: &str) -> String {
    crate::keys::backlog(order)
}

/// The keys and arguments [`PASS_TURN`] needs for `job`, after a script's own: nothing for a
/// job outside any conversation's order.
pub(super) fn pass_turn_args(invocation: &mut redis::ScriptInvocation<'_>, job: &Job) {
    if let Some(ticket) = &job.order {
        invocation
            .key(&ticket.order)
            .key(backlog_key(&ticket.order))
            .arg(&ticket.ticket)
            .arg(millis(ORDER_TTL))
            .arg(&ticket.order);
    }
}

impl RedisQueue {
    pub async fn admit(
        &self,
        claim: &str,
        claim_ttl: std::time::Duration,
        order: &str,
        ticket: &str,
        payload: &str,
    ) -> Result<Admitted, StoreError> {
        let mut connection = self.connection.clone();
        let admitted: u8 = ADMIT_SCRIPT
            .key(claim)
            .key(order)
            .key(backlog_key(order))
            .key(&self.stream)
            .arg(ticket)
            .arg(millis(claim_ttl))
            .arg(millis(ORDER_TTL))
            .arg(payload)
            .arg(order)
            .invoke_async(&mut connection)
            .await?;
        Ok(match admitted {
            1 => Admitted::Enqueued(ticket.to_owned()),
            _ => Admitted::Duplicate,
        })
    }

    /// Done: the job leaves the stream and, if it held its conversation's turn, passes it on.
    pub async fn ack(&self, job: &Job) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = COMPLETE_SCRIPT.prepare_invoke();
        invocation.key(&self.stream).arg(GROUP).arg(&job.id);
        pass_turn_args(&mut invocation, job);
        invocation.invoke_async::<()>(&mut connection).await?;
        Ok(())
    }
}
