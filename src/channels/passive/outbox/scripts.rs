//! The outbox's Lua: each script is one atomic step across replicas, names every key it
//! touches in KEYS, and is safe to run twice with the same arguments (a command resent after a
//! dropped connection): `ARRIVE` is keyed by the request's own id, `COMMIT` keeps its result,
//! `PUSH_PARTS` is keyed by the message, `TAKE` returns what it bound before.
//!
//! Two kinds of key, so that Redis counts few commands per message (`INFO commandstats` counts
//! every call a script makes). The usual message costs `ARRIVE` (`EVALSHA`, `MGET` of the box
//! and the record, `SET` of the box) with the memory's `LRANGE` beside it, then `COMMIT`
//! (`EVALSHA`, `GETDEL` of the box, `SET` of the record, `RPUSH` of the turn): 8 commands. The
//! WeChat test `an_answer_in_time_costs_two_redis_round_trips_and_eight_commands` lists them.
//!
//! The user's **box** (one JSON string, 48 h while anything is in it):
//! - `e`, the outbox, front first: an answer `{a: message id, q: question, l: its generator's
//!   lease until (ms), g: its parts once generated, c: what its commit returned}` carrying its
//!   message's deliveries while it is there (`n`, `r`, `w` as in a record); or a ready part
//!   `{p: text}`;
//! - `p`, set once the user was told to reply for what is owed;
//! - `d`, the deliveries of messages whose answer left the outbox before one was bound to them
//!   (`n`, `r`, `c`, `t`: kept until, ms): taken by another message, or dropped by a restart;
//! - `f`, the messages whose fallback parts were queued (kept until, ms).
//!
//! A message's **record** (its own key, JSON, the format older botgates wrote too): `n`
//! deliveries seen, `r[request]` what `ARRIVE` told that request (`attempt:role`), `reply` the
//! text bound to it (every retry gets the same bytes), `c` what `COMMIT` returned (`true` in
//! place of the text when that is the reply). Written for a pull when it arrives, and for a
//! message when something is bound to it (1 minute).
//!
//! Times are the replica's clock (ms), passed in, rather than Redis's `TIME` (a command of its
//! own): replicas' clocks must agree within a second or two, or a lease lapses early and a
//! second replica generates an answer whose commit then changes nothing.

use std::sync::LazyLock;

use redis::Script;

use super::{BOUND_STATE_TTL, OUTBOX_TTL, REQUEST_STATE_TTL};
use crate::store::APPEND_TURN_LUA;

/// Functions every script may use.
const COMMON: &str = r#"
-- The box as stored (or a new one), without the records and markers whose time is up.
local function decode_box(raw, now)
  local box = {}
  if raw then box = cjson.decode(raw) end
  box.e = box.e or {}
  box.d = box.d or {}
  box.f = box.f or {}
  -- Clearing fields while traversing is allowed in Lua.
  for id, record in pairs(box.d) do
    if record.t < now then box.d[id] = nil end
  end
  for id, kept in pairs(box.f) do
    if kept < now then box.f[id] = nil end
  end
  return box
end

-- Writes the box with the expiry of what it holds; a box that holds nothing is deleted
-- (`present`: the key holds a box now).
local function write_box(key, box, now, present)
  local ttl = 0
  if #box.e > 0 or box.p or next(box.f) then
    ttl = OUTBOX_TTL
  else
    for _, record in pairs(box.d) do
      if record.t - now > ttl then ttl = record.t - now end
    end
  end
  if ttl <= 0 then
    if present then redis.call('DEL', key) end
    return
  end
  -- Empty tables are left out: cjson cannot tell an empty array from an empty object.
  local stored = {p = box.p}
  if #box.e > 0 then stored.e = box.e end
  if next(box.d) then stored.d = box.d end
  if next(box.f) then stored.f = box.f end
  redis.call('SET', key, cjson.encode(stored), 'PX', ttl)
end

-- A message's record, or nil (also for a hash an older botgate left, which `fold_old` reads).
local function read_record(key)
  local raw = redis.pcall('GET', key)
  if type(raw) ~= 'string' then return nil end
  return cjson.decode(raw)
end

local function write_record(key, record, ttl)
  if ttl then
    redis.call('SET', key, cjson.encode(record), 'PX', ttl)
  else
    redis.call('SET', key, cjson.encode(record), 'KEEPTTL')
  end
end

local function position_of(box, id)
  for i, entry in ipairs(box.e) do
    if entry.a == id then return i end
  end
  return nil
end

-- Where message `id`'s deliveries are counted ('entry', 'box' or 'key'): its outbox entry
-- while it has one that counts them, else the box's `d`, else its record (`stored`).
local function holder_of(box, id, stored)
  local position = position_of(box, id)
  if position and box.e[position].n then return box.e[position], 'entry' end
  if box.d[id] then return box.d[id], 'box' end
  if stored then return stored, 'key' end
  return nil, nil
end

-- An answer's entry leaves the outbox before anything was bound to its message: its
-- deliveries stay countable for the message's retries.
local function retire(box, entry, now)
  if entry.n then
    box.d[entry.a] = {n = entry.n, r = entry.r, c = entry.c, t = now + REQUEST_TTL}
  end
end

-- The text a request carries when it takes `text` from the outbox: with the continue hint
-- when more is owed than the user was promised.
local function bind(box, text, hint)
  if #box.e == 0 then
    box.p = nil
  elseif box.p and string.sub(text, -#hint) ~= hint then
    text = text .. hint
  end
  return text
end

-- Replaces the front entry with an answer's parts after its first (the first is bound).
local function unfold_front(box, parts)
  table.remove(box.e, 1)
  for j = #parts, 2, -1 do table.insert(box.e, 1, {p = parts[j]}) end
end

-- The front's first part, taken; and the answer's entry when it was a generated answer.
local function take_front(box)
  local front = box.e[1]
  if not front then return nil end
  if front.p then
    table.remove(box.e, 1)
    return front.p
  end
  if not front.g then return nil end
  unfold_front(box, front.g)
  return front.g[1], front
end

local function first_ungenerated(box)
  for i, entry in ipairs(box.e) do
    if entry.a and not entry.g then return entry, i end
  end
  return nil
end

-- Folds what an older botgate left for this user (an outbox list of `A<id>` and `P<text>`, a
-- state hash of `q:`, `l:`, `a:`, `f:` and `promised`; keys `outbox` and `state`) into a box
-- that did not exist, and drops them; `persist`: writes the box at once. A message record it
-- left as a hash (before 2026-12-03; `record_key`, which MGET read as nothing) is returned as
-- a record. One EXISTS when there is nothing to fold.
local function fold_old(box, outbox, state, record_key, now, persist)
  if redis.call('EXISTS', outbox, state, record_key or outbox) == 0 then return nil end
  local fields = redis.call('HGETALL', state)
  local s = {}
  for i = 1, #fields, 2 do s[fields[i]] = fields[i + 1] end
  for _, item in ipairs(redis.call('LRANGE', outbox, 0, -1)) do
    local rest = string.sub(item, 2)
    if string.sub(item, 1, 1) == 'P' then
      box.e[#box.e + 1] = {p = rest}
    elseif s['a:' .. rest] then
      box.e[#box.e + 1] = {a = rest, g = cjson.decode(s['a:' .. rest])}
    else
      box.e[#box.e + 1] = {a = rest, q = s['q:' .. rest], l = tonumber(s['l:' .. rest])}
    end
  end
  if s.promised then box.p = true end
  for name in pairs(s) do
    if string.sub(name, 1, 2) == 'f:' then box.f[string.sub(name, 3)] = now + OUTBOX_TTL end
  end
  redis.call('DEL', outbox, state)
  if persist then write_box(KEYS[1], box, now, false) end
  if record_key and redis.call('TYPE', record_key).ok == 'hash' then
    local fields = redis.call('HGETALL', record_key)
    local record = {n = 0, r = {}}
    for i = 1, #fields, 2 do
      local name, value = fields[i], fields[i + 1]
      if name == 'n' then record.n = tonumber(value)
      elseif name == 'c' then record.c = cjson.decode(value)
      elseif name == 'reply' then record.reply = value
      elseif name == 'w' then record.w = tonumber(value)
      elseif string.sub(name, 1, 1) == 'r' then record.r[string.sub(name, 2)] = value end
    end
    write_record(record_key, record)
    return record
  end
  return nil
end

-- The box and the message's record (KEYS[1], KEYS[2]) in one read. While an upgrade's window
-- lasts (ARGV[1]), what an older botgate left (KEYS[3], KEYS[4]) is folded into a new box.
local function open_with_record(now)
  local read = redis.call('MGET', KEYS[1], KEYS[2])
  local box = decode_box(read[1], now)
  local stored = read[2] and cjson.decode(read[2])
  if not read[1] and ARGV[1] == '1' then
    stored = fold_old(box, KEYS[3], KEYS[4], (not stored) and KEYS[2], now, true) or stored
  end
  return box, stored
end

-- The box alone (KEYS[1]); the older layout's keys are KEYS[2] and KEYS[3].
local function open_box(now)
  local raw = redis.call('GET', KEYS[1])
  local box = decode_box(raw, now)
  if not raw and ARGV[1] == '1' then fold_old(box, KEYS[2], KEYS[3], nil, now, true) end
  return box
end
"#;

// KEYS: box, record[, old outbox, old state]. ARGV: legacy ('1': the old keys are given, to
// fold into a box that does not exist), now ms, request id, message id, question, kind ('q' a
// question, 'r' a restart: /reset or a farewell, which drops what is owed), lease ms, wait ms.
// Returns {attempt, role}: 0 a later delivery, 1 generate now, 2 generate after the answers
// before it, 3 a pull of what is owed.
const ARRIVE: &str = r#"
local now = tonumber(ARGV[2])
local request, id = ARGV[3], ARGV[4]
local box, stored = open_with_record(now)
local holder, place = holder_of(box, id, stored)
if not holder and position_of(box, id) then
  -- An answer owed for a message without a record (left by an older botgate): its first
  -- delivery came before.
  holder, place = {n = 1, r = {}, t = now + REQUEST_TTL}, 'box'
  box.d[id] = holder
end
if holder then
  holder.r = holder.r or {}
  local said = holder.r[request]
  if said then
    local attempt, role = string.match(said, '(%d+):(%d+)')
    return {tonumber(attempt), tonumber(role)}
  end
  holder.n = (holder.n or 0) + 1
  holder.r[request] = holder.n .. ':0'
  if place == 'key' then write_record(KEYS[2], holder) else write_box(KEYS[1], box, now, true) end
  return {holder.n, 0}
end
if ARGV[6] == 'r' then
  for _, entry in ipairs(box.e) do
    if entry.a then retire(box, entry, now) end
  end
  box.e = {}
  box.p = nil
end
if #box.e > 0 and (box.e[1].p or box.p) then
  write_record(KEYS[2], {n = 1, r = {[request] = '1:3'}}, REQUEST_TTL)
  return {1, 3}
end
local entry = {a = id, q = ARGV[5], n = 1, r = {}, w = now + tonumber(ARGV[8])}
local role = 2
if first_ungenerated(box) == nil then
  role = 1
  entry.l = now + tonumber(ARGV[7])
end
entry.r[request] = '1:' .. role
box.e[#box.e + 1] = entry
write_box(KEYS[1], box, now, true)
return {1, role}
"#;

// The answer to a message is ready. KEYS: box, record[, old outbox, old state][, memory].
// ARGV: legacy, now ms, message id, parts (JSON), lease ms, hint, awaited ('1': the caller
// knows the message's first delivery is still waiting), refresh ('1': the memory's expiry is
// due)[, turn, turns kept, memory TTL s]. Returns {bound text, next id, next question}: the
// first part when it was bound to the message's first delivery, still waiting; and the next
// answer to generate, its lease taken. An answer dropped by a restart is neither stored nor
// remembered.
const COMMIT: &str = r#"
local now = tonumber(ARGV[2])
local id = ARGV[3]
-- Taken, not read: the usual commit leaves the box empty, and then it is not written back.
local raw = redis.call('GETDEL', KEYS[1])
local box = decode_box(raw, now)
if not raw and ARGV[1] == '1' then fold_old(box, KEYS[3], KEYS[4], nil, now, false) end
local position = position_of(box, id)
local entry = position and box.e[position]
local result = {false, false, false}
if not entry or entry.c then
  -- A replay (the commit's result was kept), or an answer whose entry is gone: a restart
  -- dropped it, or the box expired.
  local kept = entry and entry.c or (box.d[id] and box.d[id].c)
  local stored
  if not kept then
    stored = read_record(KEYS[2])
    kept = stored and stored.c
    -- The bound text is kept once, as the reply.
    if kept and kept[1] == true then kept[1] = stored.reply end
  end
  if kept then
    write_box(KEYS[1], box, now, false)
    return kept
  end
  if box.d[id] then
    box.d[id].c = result
  elseif stored then
    -- Whatever was bound to the message stays bound.
    stored.c = result
    write_record(KEYS[2], stored)
  else
    write_record(KEYS[2], {n = 0, c = result}, BOUND_TTL)
  end
  write_box(KEYS[1], box, now, false)
  return result
end
-- The memory is trimmed once it holds half as many turns again as it keeps, its expiry set
-- only when due: two commands most messages need not pay.
if ARGV[9] then
  append_new_turn(KEYS[#KEYS], ARGV[9], ARGV[10], ARGV[11], math.ceil(tonumber(ARGV[10]) / 2),
    ARGV[8])
end
local parts = cjson.decode(ARGV[4])
local deliveries = entry
if not entry.n then
  -- An entry an older botgate left: its deliveries are in the message's record.
  deliveries = read_record(KEYS[2]) or {}
end
-- A first delivery that stops waiting removes `w` first; the clock only tells about one that
-- died without doing so.
local until_ms = tonumber(deliveries.w)
local waiting = position == 1 and until_ms and not deliveries.reply
  and (ARGV[7] == '1' or until_ms > now)
if waiting then
  unfold_front(box, parts)
  result[1] = bind(box, parts[1], ARGV[6])
else
  entry.g, entry.q, entry.l, entry.w = parts, nil, nil, nil
end
local next_entry = first_ungenerated(box)
if next_entry and next_entry.q and (next_entry.l or 0) < now then
  next_entry.l = now + tonumber(ARGV[5])
  result[2], result[3] = next_entry.a, next_entry.q
end
if waiting then
  write_record(KEYS[2], {n = deliveries.n, r = deliveries.r, reply = result[1],
    c = {true, result[2], result[3]}}, BOUND_TTL)
else
  entry.c = result
end
write_box(KEYS[1], box, now, false)
return result
"#;

// What this request answers with. KEYS: box, record[, old outbox, old state]. ARGV: legacy,
// now ms, mode (0 look, 1 give up waiting to be handed the answer, 2 the same on the
// platform's last delivery), hint, message id. Returns {kind, text}: 1 text (bound to the
// message now or before), 2 placeholder (owed content is on its way and the user is now told
// to reply for it), 3 owed but not ready, 0 nothing owed at all. A request that carries an
// earlier answer while its own is still owed promises its own: the text gets the hint.
const TAKE: &str = r#"
local now = tonumber(ARGV[2])
local mode, hint, id = ARGV[3], ARGV[4], ARGV[5]
local box, stored = open_with_record(now)
if stored and stored.reply then return {1, stored.reply} end
local holder, place = holder_of(box, id, stored)
local stopped = false
if mode ~= '0' and holder and holder.w then
  holder.w = nil
  stopped = true
end
local text, taken = take_front(box)
if text then
  local record = stored or {}
  if taken and taken.a == id then
    -- Its own answer: what the entry counted moves to the record (an entry an older botgate
    -- left counted nothing; its record did).
    if taken.n then record.n, record.r, record.c = taken.n, taken.r, taken.c end
  elseif taken then
    retire(box, taken, now)
  end
  if holder and place ~= 'key' then record.n, record.r = holder.n, holder.r end
  local own = position_of(box, id)
  if own then
    -- Its own answer is still owed: promised, and no longer to be handed to this delivery.
    box.p = true
    box.e[own].w = nil
  end
  record.reply = bind(box, text, hint)
  write_record(KEYS[2], record, BOUND_TTL)
  write_box(KEYS[1], box, now, true)
  return {1, record.reply}
end
local owed = #box.e > 0
local promise = mode == '2' and owed and not box.p
if promise then box.p = true end
if promise or (stopped and place ~= 'key') then write_box(KEYS[1], box, now, true) end
if stopped and place == 'key' then write_record(KEYS[2], holder) end
if not owed then return {0, ''} end
if mode == '2' then return {2, ''} end
return {3, ''}
"#;

// The next answer to generate lost its generator (its lease lapsed: the replica died): take
// the lease and return {id, question}. An entry whose question is gone is dropped.
// KEYS: box[, old outbox, old state]. ARGV: legacy, now ms, lease ms.
const TAKEOVER: &str = r#"
local now = tonumber(ARGV[2])
local box = open_box(now)
local entry, index = first_ungenerated(box)
if not entry or (entry.l or 0) >= now then return false end
if not entry.q then
  table.remove(box.e, index)
  retire(box, entry, now)
  write_box(KEYS[1], box, now, true)
  return false
end
entry.l = now + tonumber(ARGV[3])
write_box(KEYS[1], box, now, true)
return {entry.a, entry.q}
"#;

// The generator is alive. KEYS: box. ARGV: legacy ('0'), now ms, message id, lease ms.
const RENEW: &str = r#"
local now = tonumber(ARGV[2])
local box = decode_box(redis.call('GET', KEYS[1]), now)
local position = position_of(box, ARGV[3])
if not position or not box.e[position].l then return 0 end
box.e[position].l = now + tonumber(ARGV[4])
write_box(KEYS[1], box, now, true)
return 1
"#;

// Ready parts for the user's next messages (an active answer falling back), once per message.
// KEYS: box[, old outbox, old state]. ARGV: legacy, now ms, message id, parts...
const PUSH_PARTS: &str = r#"
local now = tonumber(ARGV[2])
local box = open_box(now)
if box.f[ARGV[3]] then return 0 end
box.f[ARGV[3]] = now + OUTBOX_TTL
for i = 4, #ARGV do box.e[#box.e + 1] = {p = ARGV[i]} end
box.p = true
write_box(KEYS[1], box, now, true)
return 1
"#;

fn script(body: &str) -> Script {
    let constants = format!(
        "local REQUEST_TTL, BOUND_TTL, OUTBOX_TTL = {}, {}, {}\n",
        REQUEST_STATE_TTL.as_millis(),
        BOUND_STATE_TTL.as_millis(),
        OUTBOX_TTL.as_millis()
    );
    Script::new(&format!("{constants}{COMMON}{APPEND_TURN_LUA}{body}"))
}

// Built once: `Script::new` hashes its source, which is wasted work on every message.
pub(super) static ARRIVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(ARRIVE));
pub(super) static COMMIT_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(COMMIT));
pub(super) static TAKE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(TAKE));
pub(super) static TAKEOVER_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(TAKEOVER));
pub(super) static RENEW_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(RENEW));
pub(super) static PUSH_PARTS_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(PUSH_PARTS));
