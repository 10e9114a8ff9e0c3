#!/usr/bin/env bash
# What the commands of one passive WeChat message cost Redis, per layout: the one before
# 2026-12-04 (17 commands), an intermediate one (12), and the box per user built since (8).
#
# Each layout's commands for one message (arrival, memory read, commit) run inside one script
# call, with a fresh message and user per call, as in `wechat-safe`; an empty script call with
# the same arguments measures what every script call costs anyway. Redis's own CPU (INFO cpu)
# per call, median of the rounds. Needs redis-server and redis-benchmark (Debian's
# redis-server and redis-tools); starts its own Redis on a free port.
#
#   tests/bench/redis-layout.sh [rounds]
set -euo pipefail

rounds=${1:-5}
calls=100000
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
  --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done

# Before 2026-12-04 (the list the WeChat test pinned then):
# the message's record, the user's outbox (a list) and its state (a hash), each with an expiry;
# then the memory; then the commit.
today=$(cat <<'LUA'
local record = '{"r":{"req":"1:1"},"w":"1796406409768","n":1}'
redis.call('GET', KEYS[1])
redis.call('RPUSH', KEYS[2], 'A' .. ARGV[1])
redis.call('TIME')
redis.call('HSET', KEYS[3], 'q:' .. ARGV[1], ARGV[2], 'l:' .. ARGV[1], '1796406415268')
redis.call('EXPIRE', KEYS[2], 172800)
redis.call('EXPIRE', KEYS[3], 172800)
redis.call('SET', KEYS[1], record, 'EX', 600)
redis.call('LRANGE', KEYS[4], 0, -1)
redis.call('GET', KEYS[1])
redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('RPUSH', KEYS[4], ARGV[3])
redis.call('EXPIRE', KEYS[4], 86400)
redis.call('LPOP', KEYS[2])
redis.call('HDEL', KEYS[3], 'q:' .. ARGV[1], 'l:' .. ARGV[1], 'promised')
redis.call('SET', KEYS[1], record .. ARGV[4], 'EX', 60)
return 1
LUA
)
# The outbox and its state as one string key (KEYS[5]), read with the record in one MGET and
# written once with its expiry; dropped by the commit that empties it.
one_box=$(cat <<'LUA'
local record = '{"r":{"req":"1:1"},"w":"1796406409768","n":1}'
redis.call('MGET', KEYS[1], KEYS[5])
redis.call('TIME')
redis.call('SET', KEYS[5], '{"e":[{"a":"' .. ARGV[1] .. '","q":' .. cjson.encode(ARGV[2])
  .. ',"l":"1796406415268"}]}', 'EX', 172800)
redis.call('SET', KEYS[1], record, 'EX', 600)
redis.call('LRANGE', KEYS[4], 0, -1)
redis.call('MGET', KEYS[1], KEYS[5])
redis.call('RPUSH', KEYS[4], ARGV[3])
redis.call('EXPIRE', KEYS[4], 86400)
redis.call('DEL', KEYS[5])
redis.call('SET', KEYS[1], record .. ARGV[4], 'EX', 60)
return 1
LUA
)
# One key per user, as built (KEYS[5], the box: outbox, state and the pending message's
# deliveries in one string; `an_answer_in_time_costs_two_redis_round_trips_and_eight_commands`
# pins the list): read with the record key in one MGET, written once with its expiry; the
# commit takes it with GETDEL (the usual outbox holds only this answer), keeps the bound reply
# for WeChat's retries, appends the turn. No TIME (the replica's clock), no memory EXPIRE (set
# again once a twentieth of its TTL has passed).
one_key=$(cat <<'LUA'
local record = '{"r":{"req":"1:1"},"w":"1796406409768","n":1}'
redis.call('MGET', KEYS[5], KEYS[1])
redis.call('SET', KEYS[5], '{"e":[{"a":"' .. ARGV[1] .. '","q":' .. cjson.encode(ARGV[2])
  .. ',"l":"1796406415268","w":"1796406409768","n":"1","r":{"req":"1:1"}}]}', 'EX', 172800)
redis.call('LRANGE', KEYS[4], 0, -1)
redis.call('GETDEL', KEYS[5])
redis.call('SET', KEYS[1], record .. ARGV[4], 'EX', 60)
redis.call('RPUSH', KEYS[4], ARGV[3])
return 1
LUA
)

load() { redis-cli -p "$port" script load "$1"; }
declare -A sha=([today]=$(load "$today") [one-box]=$(load "$one_box") [one-key]=$(load "$one_key")
  [empty]=$(load "return 1"))
cpu() { redis-cli -p "$port" info cpu | awk -F: '/used_cpu_(sys|user):/ { s += $2 } END { printf "%.6f", s }'; }
question='你好，请问你们的营业时间是几点到几点？'
turn="{\"user\":\"$question\",\"assistant\":\"echo: $question (history: 2)\"}"
declare -A results
for ((round = 1; round <= rounds; round++)); do
  for layout in today one-box one-key empty; do
    redis-cli -p "$port" flushall >/dev/null
    before=$(cpu)
    redis-benchmark -p "$port" -n "$calls" -r 100000000 -c 16 -P 8 -q \
      EVALSHA "${sha[$layout]}" 5 m:__rand_int__ o:__rand_int__ s:__rand_int__ \
      M:__rand_int__ U:__rand_int__ __rand_int__ "$question" "$turn" x >/dev/null
    after=$(cpu)
    results[$layout]+="$(python3 -c "print(($after - $before) / $calls * 1e6)") "
  done
done
python3 - "${results[today]}" "${results[one-box]}" "${results[one-key]}" "${results[empty]}" <<'PY'
import statistics, sys
today, one_box, one_key, empty = (statistics.median(map(float, a.split())) for a in sys.argv[1:])
print(f"Redis CPU per call, median of {len(sys.argv[1].split())} rounds:")
rows = [
    ("a script call, empty", empty),
    ("before: 17 commands a message (15 in this call)", today),
    ("outbox and state in one key: 12 (10)", one_box),
    ("one key per user, as built: 8 (6)", one_key),
]
for name, value in rows:
    print(f"  {name:48} {value:6.1f} us")
print(f"  saved per message: {today - one_box:.1f} us with one outbox key, {today - one_key:.1f} us with one key per user")
PY
