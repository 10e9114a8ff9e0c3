//! The per-user outbox behind WeChat's passive mode: what a user is owed, in order, and which
//! request carried which part. Redis (Lua scripts, atomic across replicas) or in process.
//!
//! Entries are strings: `A<message id>` = the answer to that message, not generated yet or not
//! yet taken; `P<text>` = a ready part. `reply:<message id>` remembers what a request was
//! answered with, so every retry of it gets the same bytes (WeChat shows at most one of them).
//!
//! The common case costs two round trips: [`Outbox::arrive`] claims the message and reads the
//! conversation's memory, and [`Outbox::commit`] stores the answer, appends the turn to memory
//! and binds the answer to the request that is still waiting for it (`waiting:<message id>`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use crate::store::RedisConnection;
use redis::Script;

use crate::core::PendingTurn;
use crate::store::{decode_history, encode_turn, Store, StoreError, Turn};

/// How long attempt counters, claims and bound replies live: longer than WeChat's retry span
/// (15 s), short enough to keep Redis small.
pub const REQUEST_STATE_TTL: Duration = Duration::from_secs(600);
/// How long undelivered content waits for the user's next message.
pub const OUTBOX_TTL: Duration = Duration::from_secs(48 * 3600);
/// The generator of an answer holds this lease and renews it every third of it. A lapsed lease
/// means the generator died (kill -9, OOM): any replica's waiting request then takes over.
pub const GENERATION_LEASE: Duration = Duration::from_secs(10);

/// What the first look at a request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// 1 for the first delivery of this message id, 2 and 3 for WeChat's retries.
    pub attempt: u64,
    /// This request must generate the answer (exactly one request per message id is told so).
    pub generate: bool,
    /// The conversation's memory, read in the same round trip when this request generates and
    /// a history key was given (Redis only; the in-process store is read where it is needed).
    pub history: Option<Vec<Turn>>,
}

#[derive(Clone)]
pub enum Outbox {
    Memory(Arc<Mutex<MemoryOutbox>>),
    Redis {
        connection: RedisConnection,
        prefix: String,
    },
}

#[derive(Default)]
pub struct MemoryOutbox {
    attempts: HashMap<String, (u64, Instant)>,
    claims: HashMap<String, Instant>,
    replies: HashMap<String, (String, Instant)>,
    answers: HashMap<String, (Vec<String>, Instant)>,
    queues: HashMap<String, (VecDeque<String>, Instant)>,
    questions: HashMap<String, (String, Instant)>,
    leases: HashMap<String, Instant>,
    waiting: HashMap<String, Instant>,
    operations: usize,
}

// KEYS: attempts, claim, outbox, reply, question, lease, waiting. The memory is read beside it
// in the same pipeline, not inside it: every stored turn passed through Lua as a string of its
// own made the script four times as expensive for Redis.
const ARRIVE: &str = r#"
local attempt = redis.call('INCR', KEYS[1])
if attempt == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if redis.call('GET', KEYS[4]) then return {attempt, 0} end
local claimed = redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1])
if not claimed then return {attempt, 0} end
local generate = 0
if redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('RPUSH', KEYS[3], 'A' .. ARGV[3])
  redis.call('SET', KEYS[5], ARGV[4], 'EX', ARGV[2])
  redis.call('SET', KEYS[6], '1', 'PX', ARGV[5])
  redis.call('SET', KEYS[7], '1', 'PX', ARGV[6])
  generate = 1
end
redis.call('EXPIRE', KEYS[3], ARGV[2])
return {attempt, generate}
"#;

// The answer is ready. KEYS: answer, question, lease, waiting, reply, outbox[, history].
// ARGV: request-state TTL, outbox TTL, the outbox entry `A<id>`, the number of parts N, the N
// parts[, the turn, max turns, memory TTL]. When the request that generated it is still waiting
// (its marker was not taken by a give-up or a timeout), the first part is bound to that request
// here and returned; otherwise the parts wait for a `TAKE`.
const COMMIT: &str = r#"
local n = tonumber(ARGV[4])
if #KEYS >= 7 then
  local turn = 5 + n
  redis.call('RPUSH', KEYS[7], ARGV[turn])
  redis.call('LTRIM', KEYS[7], -tonumber(ARGV[turn + 1]), -1)
  redis.call('EXPIRE', KEYS[7], ARGV[turn + 2])
end
redis.call('DEL', KEYS[2], KEYS[3])
if redis.call('DEL', KEYS[4]) == 1 and not redis.call('GET', KEYS[5])
    and redis.call('LINDEX', KEYS[6], 0) == ARGV[3] then
  redis.call('LPOP', KEYS[6])
  for i = 4 + n, 6, -1 do redis.call('LPUSH', KEYS[6], 'P' .. ARGV[i]) end
  redis.call('SET', KEYS[5], ARGV[5], 'EX', ARGV[1])
  if redis.call('LLEN', KEYS[6]) > 0 then redis.call('EXPIRE', KEYS[6], ARGV[2]) end
  return ARGV[5]
end
redis.call('DEL', KEYS[1])
for i = 5, 4 + n do redis.call('RPUSH', KEYS[1], ARGV[i]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return false
"#;

// Takes the front of the outbox for this request, once: a second call returns the same text.
// A third key is the request's `waiting` marker, taken first: the request has given up on being
// handed its answer by `COMMIT`, so from now on only a `TAKE` binds it.
const TAKE: &str = r#"
if #KEYS >= 3 then redis.call('DEL', KEYS[3]) end
local bound = redis.call('GET', KEYS[1])
if bound then return bound end
local front = redis.call('LINDEX', KEYS[2], 0)
if not front then return false end
local text
if string.sub(front, 1, 1) == 'P' then
  text = string.sub(front, 2)
  redis.call('LPOP', KEYS[2])
else
  local answer_key = ARGV[3] .. string.sub(front, 2)
  local parts = redis.call('LRANGE', answer_key, 0, -1)
  if #parts == 0 then return false end
  redis.call('LPOP', KEYS[2])
  for i = #parts, 2, -1 do redis.call('LPUSH', KEYS[2], 'P' .. parts[i]) end
  redis.call('DEL', answer_key)
  text = parts[1]
end
redis.call('SET', KEYS[1], text, 'EX', ARGV[1])
if redis.call('LLEN', KEYS[2]) > 0 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
return text
"#;

// The front answer is missing and its generator's lease lapsed: take the lease and return the
// question, so the caller generates it. An orphan whose question is gone too is dropped.
const TAKEOVER: &str = r#"
local front = redis.call('LINDEX', KEYS[1], 0)
if not front or string.sub(front, 1, 1) ~= 'A' then return false end
local id = string.sub(front, 2)
if redis.call('EXISTS', ARGV[1] .. 'answer:' .. id) == 1 then return false end
if not redis.call('SET', ARGV[1] .. 'lease:' .. id, '1', 'NX', 'PX', ARGV[2]) then return false end
local question = redis.call('GET', ARGV[1] .. 'question:' .. id)
if not question then
  redis.call('LPOP', KEYS[1])
  redis.call('DEL', ARGV[1] .. 'lease:' .. id)
  return false
end
return {id, question}
"#;

// Built once: `Script::new` hashes its source, which is wasted work on every message.
static ARRIVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ARRIVE));
static COMMIT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(COMMIT));
static TAKE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(TAKE));
static TAKEOVER_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(TAKEOVER));

impl Outbox {
    pub fn memory() -> Self {
        Outbox::Memory(Arc::new(Mutex::new(MemoryOutbox::default())))
    }

    pub fn redis(connection: RedisConnection, prefix: &str) -> Self {
        Outbox::Redis {
            connection,
            prefix: prefix.to_owned(),
        }
    }

    fn key(prefix: &str, kind: &str, id: &str) -> String {
        format!("{prefix}:{kind}:{id}")
    }

    /// Records one delivery of `message_id` for `user` (a key unique per bot and user). The
    /// first delivery claims the message; if the user owes nothing it queues the answer-to-be
    /// and is told to generate it, otherwise this message is a pull for what is queued. The
    /// generating request is marked as waiting for `wait`, and gets the memory under
    /// `history_key` read in the same round trip.
    pub async fn arrive(
        &self,
        user: &str,
        message_id: &str,
        question: &str,
        history_key: Option<&str>,
        wait: Duration,
    ) -> Result<Arrival, StoreError> {
        match self {
            Outbox::Memory(memory) => {
                Ok(lock(memory).arrive(user, message_id, question, wait, Instant::now()))
            }
            Outbox::Redis { connection, prefix } => {
                let mut connection = connection.clone();
                let mut invocation = ARRIVE_SCRIPT.prepare_invoke();
                invocation
                    .key(Self::key(prefix, "attempts", message_id))
                    .key(Self::key(prefix, "claim", message_id))
                    .key(Self::key(prefix, "outbox", user))
                    .key(Self::key(prefix, "reply", message_id))
                    .key(Self::key(prefix, "question", message_id))
                    .key(Self::key(prefix, "lease", message_id))
                    .key(Self::key(prefix, "waiting", message_id))
                    .arg(REQUEST_STATE_TTL.as_secs())
                    .arg(OUTBOX_TTL.as_secs())
                    .arg(message_id)
                    .arg(question)
                    .arg(GENERATION_LEASE.as_millis() as u64)
                    .arg(wait.as_millis().max(1) as u64);
                let mut pipeline = redis::pipe();
                pipeline.invoke_script(&invocation);
                if let Some(history_key) = history_key {
                    pipeline.lrange(history_key, 0, -1);
                }
                let ((attempt, generate), items): ((u64, u8), Vec<Vec<u8>>) = match history_key {
                    Some(_) => query_loading(&mut connection, &pipeline, &invocation).await?,
                    None => {
                        let (arrived,): ((u64, u8),) =
                            query_loading(&mut connection, &pipeline, &invocation).await?;
                        (arrived, Vec::new())
                    }
                };
                let generate = generate == 1;
                let history = match history_key {
                    Some(key) if generate => Some(decode_history(key, &items)?),
                    _ => None,
                };
                Ok(Arrival {
                    attempt,
                    generate,
                    history,
                })
            }
        }
    }

    /// Stores the generated answer to `message_id` as its parts, in order, and appends
    /// `remember` to the conversation's memory, in one round trip. Returns the first part when
    /// it was bound to the generating request, which is still waiting: that request answers
    /// with it. `None`: the parts wait in the outbox for a later [`Outbox::take`].
    pub async fn commit(
        &self,
        store: &Store,
        user: &str,
        message_id: &str,
        parts: &[String],
        remember: Option<&PendingTurn>,
    ) -> Result<Option<String>, StoreError> {
        let empty = [String::new()];
        let parts = if parts.is_empty() { &empty[..] } else { parts };
        match self {
            Outbox::Memory(memory) => {
                if let Some(pending) = remember {
                    store
                        .append_turn(&pending.key, &pending.turn, pending.max_turns, pending.ttl)
                        .await?;
                }
                Ok(lock(memory).commit(user, message_id, parts, Instant::now()))
            }
            Outbox::Redis { connection, prefix } => {
                let mut connection = connection.clone();
                let mut invocation = COMMIT_SCRIPT.prepare_invoke();
                invocation
                    .key(Self::key(prefix, "answer", message_id))
                    .key(Self::key(prefix, "question", message_id))
                    .key(Self::key(prefix, "lease", message_id))
                    .key(Self::key(prefix, "waiting", message_id))
                    .key(Self::key(prefix, "reply", message_id))
                    .key(Self::key(prefix, "outbox", user))
                    .arg(REQUEST_STATE_TTL.as_secs())
                    .arg(OUTBOX_TTL.as_secs())
                    .arg(format!("A{message_id}"))
                    .arg(parts.len())
                    .arg(parts);
                if let Some(pending) = remember {
                    invocation
                        .key(&pending.key)
                        .arg(encode_turn(&pending.key, &pending.turn)?)
                        .arg(pending.max_turns.max(1))
                        .arg(pending.ttl.as_secs().max(1));
                }
                let bound: Option<String> = invocation.invoke_async(&mut connection).await?;
                Ok(bound)
            }
        }
    }

    /// The generator is alive: keep its lease.
    pub async fn renew(&self, message_id: &str) -> Result<(), StoreError> {
        match self {
            Outbox::Memory(memory) => {
                let mut memory = lock(memory);
                if let Some(expires) = memory.leases.get_mut(message_id) {
                    *expires = Instant::now() + GENERATION_LEASE;
                }
                Ok(())
            }
            Outbox::Redis { connection, prefix } => {
                let mut connection = connection.clone();
                redis::cmd("PEXPIRE")
                    .arg(Self::key(prefix, "lease", message_id))
                    .arg(GENERATION_LEASE.as_millis() as u64)
                    .query_async::<()>(&mut connection)
                    .await?;
                Ok(())
            }
        }
    }

    /// When the user's next-due answer has no live generator, takes over its generation:
    /// returns the message id and the stored question. `None` when there is nothing to adopt.
    pub async fn takeover(&self, user: &str) -> Result<Option<(String, String)>, StoreError> {
        match self {
            Outbox::Memory(memory) => Ok(lock(memory).takeover(user, Instant::now())),
            Outbox::Redis { connection, prefix } => {
                let mut connection = connection.clone();
                let adopted: Option<(String, String)> = TAKEOVER_SCRIPT
                    .key(Self::key(prefix, "outbox", user))
                    .arg(format!("{prefix}:"))
                    .arg(GENERATION_LEASE.as_millis() as u64)
                    .invoke_async(&mut connection)
                    .await?;
                Ok(adopted)
            }
        }
    }

    /// What this request answers with, if anything is ready: the text bound to it earlier, or
    /// the ready front of the user's outbox, now bound to it. `None`: nothing ready yet.
    pub async fn take(&self, user: &str, message_id: &str) -> Result<Option<String>, StoreError> {
        self.take_with(user, message_id, false).await
    }

    /// [`Outbox::take`] for the generating request when it stops waiting: from now on its answer
    /// is no longer bound to it by [`Outbox::commit`], so nothing is bound to a request that
    /// has already answered without it.
    pub async fn take_final(
        &self,
        user: &str,
        message_id: &str,
    ) -> Result<Option<String>, StoreError> {
        self.take_with(user, message_id, true).await
    }

    async fn take_with(
        &self,
        user: &str,
        message_id: &str,
        give_up: bool,
    ) -> Result<Option<String>, StoreError> {
        match self {
            Outbox::Memory(memory) => {
                let mut memory = lock(memory);
                if give_up {
                    memory.waiting.remove(message_id);
                }
                Ok(memory.take(user, message_id, Instant::now()))
            }
            Outbox::Redis { connection, prefix } => {
                let mut connection = connection.clone();
                let mut invocation = TAKE_SCRIPT.prepare_invoke();
                invocation
                    .key(Self::key(prefix, "reply", message_id))
                    .key(Self::key(prefix, "outbox", user));
                if give_up {
                    invocation.key(Self::key(prefix, "waiting", message_id));
                }
                let text: Option<String> = invocation
                    .arg(REQUEST_STATE_TTL.as_secs())
                    .arg(OUTBOX_TTL.as_secs())
                    .arg(format!("{prefix}:answer:"))
                    .invoke_async(&mut connection)
                    .await?;
                Ok(text)
            }
        }
    }

    /// Queues ready parts for a user's next messages (an active-mode answer falling back).
    pub async fn push_parts(&self, user: &str, parts: &[String]) -> Result<(), StoreError> {
        let entries: Vec<String> = parts.iter().map(|part| format!("P{part}")).collect();
        match self {
            Outbox::Memory(memory) => {
                let mut memory = lock(memory);
                let queue = memory.queue(user, Instant::now());
                queue.extend(entries);
                Ok(())
            }
            Outbox::Redis { connection, prefix } => {
                let key = Self::key(prefix, "outbox", user);
                let mut connection = connection.clone();
                redis::pipe()
                    .atomic()
                    .rpush(&key, entries)
                    .ignore()
                    .expire(&key, OUTBOX_TTL.as_secs() as i64)
                    .ignore()
                    .query_async::<()>(&mut connection)
                    .await?;
                Ok(())
            }
        }
    }

    /// Forgets what a user is owed (unsubscribe).
    pub async fn clear(&self, user: &str) -> Result<(), StoreError> {
        match self {
            Outbox::Memory(memory) => {
                lock(memory).queues.remove(user);
                Ok(())
            }
            Outbox::Redis { connection, prefix } => {
                let mut connection = connection.clone();
                redis::cmd("DEL")
                    .arg(Self::key(prefix, "outbox", user))
                    .query_async::<()>(&mut connection)
                    .await?;
                Ok(())
            }
        }
    }
}

/// Runs a pipeline whose first command is `script`. Pipelined scripts are not loaded on demand
/// as a lone `invoke_async` is, so after `NOSCRIPT` (a new or restarted Redis) the script is
/// loaded and the pipeline sent again: the script did not run, and the rest only reads.
async fn query_loading<T: redis::FromRedisValue>(
    connection: &mut RedisConnection,
    pipeline: &redis::Pipeline,
    script: &redis::ScriptInvocation<'_>,
) -> Result<T, StoreError> {
    match pipeline.query_async(connection).await {
        Err(error)
            if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
        {
            script.load_async(connection).await?;
            Ok(pipeline.query_async(connection).await?)
        }
        result => Ok(result?),
    }
}

fn lock(memory: &Mutex<MemoryOutbox>) -> std::sync::MutexGuard<'_, MemoryOutbox> {
    memory
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sweeps expired entries every so many operations, so the map tracks live traffic only.
const SWEEP_EVERY: usize = 4096;

impl MemoryOutbox {
    fn sweep(&mut self, now: Instant) {
        self.operations += 1;
        if self.operations % SWEEP_EVERY != 0 {
            return;
        }
        self.attempts.retain(|_, (_, expires)| *expires > now);
        self.claims.retain(|_, expires| *expires > now);
        self.replies.retain(|_, (_, expires)| *expires > now);
        self.answers.retain(|_, (_, expires)| *expires > now);
        self.questions.retain(|_, (_, expires)| *expires > now);
        self.leases.retain(|_, expires| *expires > now);
        self.waiting.retain(|_, expires| *expires > now);
        self.queues
            .retain(|_, (queue, expires)| *expires > now && !queue.is_empty());
    }

    fn arrive(
        &mut self,
        user: &str,
        message_id: &str,
        question: &str,
        wait: Duration,
        now: Instant,
    ) -> Arrival {
        self.sweep(now);
        let state_expires = now + REQUEST_STATE_TTL;
        let attempt = {
            let entry = self
                .attempts
                .entry(message_id.to_owned())
                .or_insert((0, state_expires));
            if entry.1 <= now {
                *entry = (0, state_expires);
            }
            entry.0 += 1;
            entry.0
        };
        let bound = self
            .replies
            .get(message_id)
            .is_some_and(|(_, expires)| *expires > now);
        let claimed = self
            .claims
            .get(message_id)
            .is_some_and(|expires| *expires > now);
        if bound || claimed {
            return Arrival {
                attempt,
                generate: false,
                history: None,
            };
        }
        self.claims.insert(message_id.to_owned(), state_expires);
        let queue = self.queue(user, now);
        let generate = queue.is_empty();
        if generate {
            queue.push_back(format!("A{message_id}"));
            self.questions.insert(
                message_id.to_owned(),
                (question.to_owned(), now + OUTBOX_TTL),
            );
            self.leases
                .insert(message_id.to_owned(), now + GENERATION_LEASE);
            self.waiting.insert(message_id.to_owned(), now + wait);
        }
        Arrival {
            attempt,
            generate,
            history: None,
        }
    }

    /// `COMMIT` in process: the same outcome, without the memory (written by the caller).
    fn commit(
        &mut self,
        user: &str,
        message_id: &str,
        parts: &[String],
        now: Instant,
    ) -> Option<String> {
        self.questions.remove(message_id);
        self.leases.remove(message_id);
        let waiting = self
            .waiting
            .remove(message_id)
            .is_some_and(|expires| expires > now);
        let unbound = self
            .replies
            .get(message_id)
            .is_none_or(|(_, expires)| *expires <= now);
        let awaited = format!("A{message_id}");
        let at_front = self.front(user, now).is_some_and(|front| *front == awaited);
        if waiting && unbound && at_front {
            let first = self.unfold_front(user, parts, now);
            self.replies.insert(
                message_id.to_owned(),
                (first.clone(), now + REQUEST_STATE_TTL),
            );
            return Some(first);
        }
        self.answers
            .insert(message_id.to_owned(), (parts.to_vec(), now + OUTBOX_TTL));
        None
    }

    /// The entry at the front of `user`'s outbox, while the outbox lives.
    fn front(&self, user: &str, now: Instant) -> Option<&String> {
        self.queues
            .get(user)
            .filter(|(_, expires)| *expires > now)?
            .0
            .front()
    }

    /// Replaces the front entry (`A<id>`, the awaited answer) with the answer's parts after the
    /// first, in order, and returns the first.
    fn unfold_front(&mut self, user: &str, parts: &[String], now: Instant) -> String {
        let queue = self.queue(user, now);
        queue.pop_front();
        for part in parts[1..].iter().rev() {
            queue.push_front(format!("P{part}"));
        }
        parts[0].clone()
    }

    fn queue(&mut self, user: &str, now: Instant) -> &mut VecDeque<String> {
        let entry = self
            .queues
            .entry(user.to_owned())
            .or_insert_with(|| (VecDeque::new(), now + OUTBOX_TTL));
        if entry.1 <= now {
            entry.0.clear();
        }
        entry.1 = now + OUTBOX_TTL;
        &mut entry.0
    }

    fn takeover(&mut self, user: &str, now: Instant) -> Option<(String, String)> {
        let front = self.front(user, now)?.clone();
        let id = front.strip_prefix('A')?.to_owned();
        if self.answers.contains_key(&id)
            || self.leases.get(&id).is_some_and(|expires| *expires > now)
        {
            return None;
        }
        match self
            .questions
            .get(&id)
            .filter(|(_, expires)| *expires > now)
        {
            Some((question, _)) => {
                let question = question.clone();
                self.leases.insert(id.clone(), now + GENERATION_LEASE);
                Some((id, question))
            }
            None => {
                self.queue(user, now).pop_front();
                None
            }
        }
    }

    fn take(&mut self, user: &str, message_id: &str, now: Instant) -> Option<String> {
        if let Some((text, expires)) = self.replies.get(message_id) {
            if *expires > now {
                return Some(text.clone());
            }
        }
        let front = self.front(user, now)?.clone();
        let text = if let Some(text) = front.strip_prefix('P') {
            self.queue(user, now).pop_front();
            text.to_owned()
        } else {
            let awaited = front.strip_prefix('A').unwrap_or_default();
            let (parts, _) = self
                .answers
                .remove(awaited)
                .filter(|(parts, _)| !parts.is_empty())?;
            self.unfold_front(user, &parts, now)
        };
        self.replies.insert(
            message_id.to_owned(),
            (text.clone(), now + REQUEST_STATE_TTL),
        );
        Some(text)
    }
}
