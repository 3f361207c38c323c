#!lua
-- delete.lua plus the write-behind queue entry (no value: a delete), in the
-- same atomic step (remote/behind.c).
-- KEYS: value key, seq, meta, log, wb
-- ARGV: tombstone_ttl_ms ('0': none), fmt, log_len, channel, p0, p1, p2, p3, key,
--       seen (see take())
-- Returns {version, 1 | publish error text}.
local bad = check_hash(KEYS[1]) or check_stream(KEYS[5]) or check_hash(wbq_key(KEYS[5]))
if bad then return bad end
local v, e = take(KEYS[2], KEYS[3], KEYS[4], ARGV[#ARGV], ARGV[3])
local vs = string.format('%d', v)
delete_value(KEYS[1], vs, ARGV[1])
queue(KEYS[5], ARGV[9], vs, nil, KEYS[1])
return {vs, emit(ARGV[2], ARGV[5], ARGV[6], ARGV[7], ARGV[8], v, e, KEYS[4], ARGV[3], ARGV[4])}
