//! The outbox's Lua: each script is one atomic step across replicas, names every key it
//! touches in KEYS, and is safe to run twice with the same arguments (a command resent after a
//! dropped connection): `ARRIVE` is keyed by the request's own id, `COMMIT` keeps its result,
//! `PUSH_PARTS` is keyed by the message, `TAKE` returns what it bound before.
//!
//! Redis counts every call a script makes (`INFO commandstats`), so the two scripts of the
//! usual message (`ARRIVE`, `COMMIT`) read and write the message's record once each (a string,
//! so one `SET` gives it its expiry too), read the outbox once, skip what that read already
//! tells, and skip the clock when the caller knows: the usual message costs 8 + 8 commands
//! (scripts included), and the memory's `LRANGE` beside them; the WeChat test
//! `an_answer_in_time_costs_two_redis_round_trips_and_seventeen_commands` lists them.
//!
//! Per message (`msg`, a JSON string, 10 minutes): `n` deliveries seen, `r[request]` what
//! `ARRIVE` told that request, `w` until when (ms) its first delivery waits to be handed its
//! answer (read by `COMMIT` only, before it writes `c`: a `w` left beside `c` is never read
//! again), `reply` the text bound to it (every retry gets the same bytes), `c` what `COMMIT`
//! returned.
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

-- A message's record, read whole (`existed`: whether there was one) and written whole: with
-- `ttl` (s) as its new expiry, or keeping the one it has.
local function read_msg(key)
  local raw = redis.pcall('GET', key)
  if type(raw) == 'table' and raw.err then
    -- A record an older botgate left as a hash (upgrades before 2026-12-03): read as it was;
    -- the next write replaces it.
    local fields = redis.call('HGETALL', key)
    local msg = {n = 0, r = {}}
    for i = 1, #fields, 2 do
      local name, value = fields[i], fields[i + 1]
      if name == 'n' then msg.n = tonumber(value)
      elseif name == 'c' then msg.c = cjson.decode(value)
      elseif name == 'w' or name == 'reply' then msg[name] = value
      elseif string.sub(name, 1, 1) == 'r' then msg.r[string.sub(name, 2)] = value end
    end
    return msg, true
  end
  if raw then return cjson.decode(raw), true end
  return {n = 0, r = {}}, false
end

local function write_msg(key, msg, ttl)
  if ttl then
    redis.call('SET', key, cjson.encode(msg), 'EX', ttl)
  else
    redis.call('SET', key, cjson.encode(msg), 'KEEPTTL')
  end
end

-- The text a request carries when it takes `text` from the outbox: with the continue hint
-- when more is owed than the user was promised.
local function bind(outbox, state, text, hint)
  if redis.call('LLEN', outbox) == 0 then
    redis.call('HDEL', state, 'promised')
  elseif redis.call('HEXISTS', state, 'promised') == 1 and string.sub(text, -#hint) ~= hint then
    text = text .. hint
  end
  return text
end

-- Puts parts[last] .. parts[2] at the outbox's front, parts[2] first: one LPUSH per hundred.
local function push_front(outbox, parts, last)
  local i = last
  while i >= 2 do
    local batch = {}
    local stop = math.max(2, i - 99)
    for j = i, stop, -1 do batch[#batch + 1] = 'P' .. parts[j] end
    redis.call('LPUSH', outbox, unpack(batch))
    i = stop - 1
  end
end

-- Replaces the outbox's front entry with an answer's parts after its first (the first is
-- bound): the outbox then holds one entry less plus #parts - 1.
local function unfold_front(outbox, parts)
  if #parts < 2 then
    redis.call('LPOP', outbox)
  else
    redis.call('LSET', outbox, 0, 'P' .. parts[#parts])
    push_front(outbox, parts, #parts - 1)
  end
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
  unfold_front(outbox, parts)
  return parts[1]
end

-- The first answer among `entries` (the outbox as read) not generated yet, the entry at index
-- `skip` left out.
local function first_ungenerated_in(entries, state, skip)
  for i, entry in ipairs(entries) do
    if i ~= skip and string.sub(entry, 1, 1) == 'A' then
      local id = string.sub(entry, 2)
      if redis.call('HEXISTS', state, 'a:' .. id) == 0 then return id end
    end
  end
  return nil
end

local function first_ungenerated(outbox, state)
  return first_ungenerated_in(redis.call('LRANGE', outbox, 0, -1), state, 0)
end
"#;

// KEYS: msg, outbox, state. ARGV: request id, message id, question, kind ('q' a question,
// 'r' a restart: /reset or a farewell, which drops what is owed), message TTL s, outbox TTL
// s, lease ms, wait ms. Returns {attempt, role}: 0 a later delivery, 1 generate now, 2
// generate after the answers before it, 3 a pull of what is owed.
const ARRIVE: &str = r#"
local msg, existed = read_msg(KEYS[1])
local said = msg.r[ARGV[1]]
if said then
  local attempt, role = string.match(said, '(%d+):(%d+)')
  return {tonumber(attempt), tonumber(role)}
end
local attempt = (msg.n or 0) + 1
local role = 0
if attempt == 1 then
  if ARGV[4] == 'r' then redis.call('DEL', KEYS[2], KEYS[3]) end
  -- Pushed first: an outbox that was empty (the usual case) needs no read. A pull takes the
  -- entry back out, in the same atomic step, before anyone can see it.
  local ahead = {}
  if redis.call('RPUSH', KEYS[2], 'A' .. ARGV[2]) > 1 then
    ahead = redis.call('LRANGE', KEYS[2], 0, -2)
    if string.sub(ahead[1], 1, 1) == 'P' or redis.call('HEXISTS', KEYS[3], 'promised') == 1 then
      redis.call('RPOP', KEYS[2])
      role = 3
    end
  end
  if role ~= 3 then
    local now = now_ms()
    if first_ungenerated_in(ahead, KEYS[3], 0) == nil then
      role = 1
      redis.call('HSET', KEYS[3], 'q:' .. ARGV[2], ARGV[3], 'l:' .. ARGV[2], now + tonumber(ARGV[7]))
    else
      role = 2
      redis.call('HSET', KEYS[3], 'q:' .. ARGV[2], ARGV[3])
    end
    msg.w = tostring(now + tonumber(ARGV[8]))
  end
  redis.call('EXPIRE', KEYS[2], ARGV[6])
  redis.call('EXPIRE', KEYS[3], ARGV[6])
end
msg.n = attempt
msg.r[ARGV[1]] = attempt .. ':' .. role
if attempt == 1 then write_msg(KEYS[1], msg, ARGV[5]) else write_msg(KEYS[1], msg) end
return {attempt, role}
"#;

// The answer to a message is ready. KEYS: msg, outbox, state[, memory]. ARGV: message id,
// parts (JSON), bound TTL s, outbox TTL s, lease ms, hint, awaited ('1': the caller knows the
// message's first delivery is still waiting, so the clock need not be read)[, turn, turns
// kept, memory TTL s]. Returns {bound text, next id, next question}: the first part when it
// was bound to the message's first delivery, still waiting; and the next answer to generate,
// its lease taken. An answer dropped by a restart is neither stored nor remembered.
const COMMIT: &str = r#"
local msg, existed = read_msg(KEYS[1])
if msg.c then return msg.c end
local id = ARGV[1]
local own = 'A' .. id
-- The whole outbox in one read: where this answer is, how many entries there are, and what
-- comes after it.
local entries = redis.call('LRANGE', KEYS[2], 0, -1)
local position
for i, entry in ipairs(entries) do
  if entry == own then position = i; break end
end
local result = {false, false, false}
local now
if position then
  -- Only this run gets here: a replay returned `c` above.
  if #KEYS >= 4 then append_new_turn(KEYS[4], ARGV[8], ARGV[9], ARGV[10]) end
  local length = #entries
  local waiting = false
  if position == 1 and msg.w and not msg.reply then
    -- A first delivery that stops waiting removes `w` first; the clock only tells about one
    -- that died without doing so.
    if ARGV[7] == '1' then
      waiting = true
    else
      now = now_ms()
      waiting = tonumber(msg.w) > now
    end
  end
  if waiting then
    local parts = cjson.decode(ARGV[2])
    unfold_front(KEYS[2], parts)
    length = length - 1 + math.max(#parts - 1, 0)
    local text = parts[1]
    if length == 0 then
      redis.call('HDEL', KEYS[3], 'q:' .. id, 'l:' .. id, 'promised')
    else
      redis.call('HDEL', KEYS[3], 'q:' .. id, 'l:' .. id)
      if redis.call('HEXISTS', KEYS[3], 'promised') == 1 and string.sub(text, -#ARGV[6]) ~= ARGV[6] then
        text = text .. ARGV[6]
      end
    end
    result[1] = text
  else
    redis.call('HDEL', KEYS[3], 'q:' .. id, 'l:' .. id)
    redis.call('HSET', KEYS[3], 'a:' .. id, ARGV[2])
  end
  -- This answer's own entry is generated now (its parts stored, or unfolded into ready parts).
  local next_id = first_ungenerated_in(entries, KEYS[3], position)
  if next_id then
    now = now or now_ms()
    local queued = redis.call('HMGET', KEYS[3], 'q:' .. next_id, 'l:' .. next_id)
    if queued[1] and tonumber(queued[2] or '0') < now then
      redis.call('HSET', KEYS[3], 'l:' .. next_id, now + tonumber(ARGV[5]))
      result[2], result[3] = next_id, queued[1]
    end
  end
  if length > 0 then
    redis.call('EXPIRE', KEYS[2], ARGV[4])
    redis.call('EXPIRE', KEYS[3], ARGV[4])
  end
end
msg.c = result
if result[1] then
  msg.reply = result[1]
  write_msg(KEYS[1], msg, ARGV[3])
elseif existed then
  write_msg(KEYS[1], msg)
else
  -- An answer that took longer than the message's record lives: the new one expires too.
  write_msg(KEYS[1], msg, ARGV[3])
end
return result
"#;

// What this request answers with. KEYS: msg, outbox, state. ARGV: mode (0 look, 1 give up
// waiting to be handed the answer, 2 the same on the platform's last delivery), bound TTL s,
// hint, message id. Returns {kind, text}: 1 text (bound to the message now or before), 2
// placeholder (owed content is on its way and the user is now told to reply for it), 3 owed
// but not ready, 0 nothing owed at all. A request that carries an earlier answer while its own
// is still owed promises its own: the text gets the hint.
const TAKE: &str = r#"
local msg = read_msg(KEYS[1])
if msg.reply then return {1, msg.reply} end
local stopped = false
if ARGV[1] ~= '0' and msg.w then
  msg.w = nil
  stopped = true
end
local text = take_front(KEYS[2], KEYS[3])
if text then
  if redis.call('LPOS', KEYS[2], 'A' .. ARGV[4]) then redis.call('HSET', KEYS[3], 'promised', 1) end
  msg.reply = bind(KEYS[2], KEYS[3], text, ARGV[3])
  write_msg(KEYS[1], msg, ARGV[2])
  return {1, msg.reply}
end
if stopped then write_msg(KEYS[1], msg) end
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
