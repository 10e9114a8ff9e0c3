//! The outbox's Lua: each script is one atomic step across replicas, names every key it
//! touches in KEYS, and is safe to run twice with the same arguments (a command resent after a
//! dropped connection): `ARRIVE` is keyed by the request's own id, `COMMIT` keeps its result,
//! `PUSH_PARTS` is keyed by the message, `TAKE` returns what it bound before.
//!
//! Per message (`msg`, a hash, 10 minutes): `n` deliveries seen, `r<request>` what `ARRIVE`
//! told that request, `w` until when (ms) its first delivery waits to be handed its answer,
//! `reply` the text bound to it (every retry gets the same bytes), `c` what `COMMIT` returned.
//! Per user (`outbox`, a list): `A<id>` the answer to message `id`, `P<text>` a ready part.
//! Beside it (`state`, a hash): `q:<id>` the question, `l:<id>` its generator's lease (ms),
//! `a:<id>` the generated parts (JSON) until taken, `promised` once the user was told to reply
//! for what is owed, `f:<id>` a fallback's parts already queued.

use std::sync::LazyLock;

use redis::Script;

use crate::store::APPEND_TURN_LUA;

/// Functions every script may use. `bind` adds the continue hint when the user was promised
/// more than this request carries; `take_front` unfolds a generated answer into its parts.
const COMMON: &str = r#"
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local function bind(msg, outbox, state, text, hint, ttl)
  if redis.call('LLEN', outbox) == 0 then
    redis.call('HDEL', state, 'promised')
  elseif redis.call('HEXISTS', state, 'promised') == 1 and string.sub(text, -#hint) ~= hint then
    text = text .. hint
  end
  redis.call('HSET', msg, 'reply', text)
  redis.call('EXPIRE', msg, ttl)
  return text
end

local function take_front(outbox, state)
  local front = redis.call('LINDEX', outbox, 0)
  if not front then return nil end
  if string.sub(front, 1, 1) == 'P' then
    redis.call('LPOP', outbox)
    return string.sub(front, 2)
  end
  local id = string.sub(front, 2)
  local stored = redis.call('HGET', state, 'a:' .. id)
  if not stored then return nil end
  local parts = cjson.decode(stored)
  redis.call('HDEL', state, 'a:' .. id)
  redis.call('LPOP', outbox)
  for i = #parts, 2, -1 do redis.call('LPUSH', outbox, 'P' .. parts[i]) end
  return parts[1]
end

local function first_ungenerated(outbox, state)
  for _, entry in ipairs(redis.call('LRANGE', outbox, 0, -1)) do
    if string.sub(entry, 1, 1) == 'A' then
      local id = string.sub(entry, 2)
      if redis.call('HEXISTS', state, 'a:' .. id) == 0 then return id end
    end
  end
  return nil
end
"#;

// KEYS: msg, outbox, state. ARGV: request id, message id, question, kind ('q' a question,
// 'r' a restart: /reset or a farewell, which drops what is owed), message TTL s, outbox TTL
// s, lease ms, wait ms. Returns {attempt, role}: 0 a later delivery, 1 generate now, 2
// generate after the answers before it, 3 a pull of what is owed.
const ARRIVE: &str = r#"
local prior = redis.call('HGET', KEYS[1], 'r' .. ARGV[1])
if prior then
  local attempt, role = string.match(prior, '(%d+):(%d+)')
  return {tonumber(attempt), tonumber(role)}
end
local attempt = redis.call('HINCRBY', KEYS[1], 'n', 1)
local role = 0
if attempt == 1 then
  if ARGV[4] == 'r' then redis.call('DEL', KEYS[2], KEYS[3]) end
  local front = redis.call('LINDEX', KEYS[2], 0)
  if front and (string.sub(front, 1, 1) == 'P' or redis.call('HEXISTS', KEYS[3], 'promised') == 1) then
    role = 3
  else
    local ready = first_ungenerated(KEYS[2], KEYS[3]) == nil
    local now = now_ms()
    redis.call('RPUSH', KEYS[2], 'A' .. ARGV[2])
    redis.call('HSET', KEYS[3], 'q:' .. ARGV[2], ARGV[3])
    redis.call('HSET', KEYS[1], 'w', now + tonumber(ARGV[8]))
    if ready then
      redis.call('HSET', KEYS[3], 'l:' .. ARGV[2], now + tonumber(ARGV[7]))
      role = 1
    else
      role = 2
    end
  end
  redis.call('EXPIRE', KEYS[2], ARGV[6])
  redis.call('EXPIRE', KEYS[3], ARGV[6])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end
redis.call('HSET', KEYS[1], 'r' .. ARGV[1], attempt .. ':' .. role)
return {attempt, role}
"#;

// The answer to a message is ready. KEYS: msg, outbox, state[, memory]. ARGV: message id,
// parts (JSON), bound TTL s, outbox TTL s, lease ms, hint[, turn, turns kept, memory TTL s].
// Returns {bound text, next id, next question}: the first part when it was bound to the
// message's first delivery, still waiting; and the next answer to generate, its lease taken.
// An answer dropped by a restart is neither stored nor remembered.
const COMMIT: &str = r#"
local done = redis.call('HGET', KEYS[1], 'c')
if done then return cjson.decode(done) end
local id = ARGV[1]
local position = redis.call('LPOS', KEYS[2], 'A' .. id)
local result = {false, false, false}
if position then
  if #KEYS >= 4 then append_turn(KEYS[4], ARGV[7], ARGV[8], ARGV[9]) end
  redis.call('HDEL', KEYS[3], 'q:' .. id, 'l:' .. id)
  local waiting = tonumber(redis.call('HGET', KEYS[1], 'w') or '0')
  if position == 0 and waiting > now_ms() and redis.call('HEXISTS', KEYS[1], 'reply') == 0 then
    redis.call('HDEL', KEYS[1], 'w')
    local parts = cjson.decode(ARGV[2])
    redis.call('LPOP', KEYS[2])
    for i = #parts, 2, -1 do redis.call('LPUSH', KEYS[2], 'P' .. parts[i]) end
    result[1] = bind(KEYS[1], KEYS[2], KEYS[3], parts[1], ARGV[6], ARGV[3])
  else
    redis.call('HSET', KEYS[3], 'a:' .. id, ARGV[2])
  end
  local next_id = first_ungenerated(KEYS[2], KEYS[3])
  if next_id then
    local now = now_ms()
    local question = redis.call('HGET', KEYS[3], 'q:' .. next_id)
    if question and tonumber(redis.call('HGET', KEYS[3], 'l:' .. next_id) or '0') < now then
      redis.call('HSET', KEYS[3], 'l:' .. next_id, now + tonumber(ARGV[5]))
      result[2], result[3] = next_id, question
    end
  end
  if redis.call('LLEN', KEYS[2]) > 0 then
    redis.call('EXPIRE', KEYS[2], ARGV[4])
    redis.call('EXPIRE', KEYS[3], ARGV[4])
  end
end
redis.call('HSET', KEYS[1], 'c', cjson.encode(result))
-- An answer that took longer than the message's state lives would leave it without expiry.
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return result
"#;

// What this request answers with. KEYS: msg, outbox, state. ARGV: mode (0 look, 1 give up
// waiting to be handed the answer, 2 the same on the platform's last delivery), bound TTL s,
// hint, message id. Returns {kind, text}: 1 text (bound to the message now or before), 2
// placeholder (owed content is on its way and the user is now told to reply for it), 3 owed
// but not ready, 0 nothing owed at all. A request that carries an earlier answer while its own
// is still owed promises its own: the text gets the hint.
const TAKE: &str = r#"
if ARGV[1] ~= '0' then redis.call('HDEL', KEYS[1], 'w') end
local bound = redis.call('HGET', KEYS[1], 'reply')
if bound then return {1, bound} end
local text = take_front(KEYS[2], KEYS[3])
if text then
  if redis.call('LPOS', KEYS[2], 'A' .. ARGV[4]) then redis.call('HSET', KEYS[3], 'promised', 1) end
  return {1, bind(KEYS[1], KEYS[2], KEYS[3], text, ARGV[3], ARGV[2])}
end
if redis.call('LLEN', KEYS[2]) == 0 then return {0, ''} end
if ARGV[1] == '2' then
  redis.call('HSET', KEYS[3], 'promised', 1)
  return {2, ''}
end
return {3, ''}
"#;

// The next answer to generate lost its generator (its lease lapsed: the replica died): take
// the lease and return {id, question}. An entry whose question is gone is dropped.
// KEYS: outbox, state. ARGV: lease ms.
const TAKEOVER: &str = r#"
local id = first_ungenerated(KEYS[1], KEYS[2])
if not id then return false end
local now = now_ms()
if tonumber(redis.call('HGET', KEYS[2], 'l:' .. id) or '0') >= now then return false end
local question = redis.call('HGET', KEYS[2], 'q:' .. id)
if not question then
  redis.call('LREM', KEYS[1], 1, 'A' .. id)
  redis.call('HDEL', KEYS[2], 'l:' .. id)
  return false
end
redis.call('HSET', KEYS[2], 'l:' .. id, now + tonumber(ARGV[1]))
return {id, question}
"#;

// The generator is alive. KEYS: state. ARGV: message id, lease ms.
const RENEW: &str = r#"
if redis.call('HEXISTS', KEYS[1], 'l:' .. ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'l:' .. ARGV[1], now_ms() + tonumber(ARGV[2]))
return 1
"#;

// Ready parts for the user's next messages (an active answer falling back), once per message.
// KEYS: outbox, state. ARGV: message id, outbox TTL s, parts...
const PUSH_PARTS: &str = r#"
if redis.call('HSETNX', KEYS[2], 'f:' .. ARGV[1], 1) == 0 then return 0 end
for i = 3, #ARGV do redis.call('RPUSH', KEYS[1], 'P' .. ARGV[i]) end
redis.call('HSET', KEYS[2], 'promised', 1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{COMMON}{APPEND_TURN_LUA}{body}"))
}

// Built once: `Script::new` hashes its source, which is wasted work on every message.
pub(super) static ARRIVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(ARRIVE));
pub(super) static COMMIT_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(COMMIT));
pub(super) static TAKE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(TAKE));
pub(super) static TAKEOVER_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(TAKEOVER));
pub(super) static RENEW_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(RENEW));
pub(super) static PUSH_PARTS_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(PUSH_PARTS));
