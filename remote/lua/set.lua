#!lua
-- Stores a value with a fresh version, its TTL, the log entry and the event,
-- in one atomic step (with the shebang, Redis refuses the whole script up
-- front when it is out of memory, so it never stops half-way for that).
-- KEYS: value key, seq, meta, log
-- ARGV: value, ttl_ms ('0': none), fmt ('m'|'j'), log_len, channel,
--       event template p0, p1, p2, p3
-- Returns {version, 1 | publish error text}.
local bad = check_hash(KEYS[1])
if bad then return bad end
local v, e = take(KEYS[2], KEYS[3], KEYS[4])
local vs = string.format('%d', v)
-- A write revokes any load lock (a load begun before it must not store
-- afterwards) and ends a tag or a not-found marker.
redis.call('HDEL', KEYS[1], 'lock', 'lock_until', 'lock_seq', 'outdated', 'empty')
redis.call('HSET', KEYS[1], 'value', ARGV[1], 'version', vs)
if ARGV[2] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('PERSIST', KEYS[1])
end
return {vs, emit(ARGV[3], ARGV[6], ARGV[7], ARGV[8], ARGV[9], v, e, KEYS[4], ARGV[4], ARGV[5])}
