#!lua
-- set.lua plus the write-behind queue entry, in the same atomic step: once
-- the caller has the reply, the value, its event and its queue entry are all
-- in Redis (remote/behind.c).
-- KEYS: value key, seq, meta, log, wb
-- ARGV: value, ttl_ms ('0': none), fmt ('m'|'j'), log_len, channel,
--       event template p0, p1, p2, p3, key, seen (see take())
-- Returns {version, 1 | publish error text}.
local bad = check_hash(KEYS[1]) or check_stream(KEYS[5]) or check_hash(wbq_key(KEYS[5]))
if bad then return bad end
local v, e = take(KEYS[2], KEYS[3], KEYS[4], ARGV[#ARGV], ARGV[4])
local vs = string.format('%d', v)
store_value(KEYS[1], vs, ARGV[1], ARGV[2])
queue(KEYS[5], ARGV[10], vs, ARGV[1], KEYS[1])
return {vs, emit(ARGV[3], ARGV[6], ARGV[7], ARGV[8], ARGV[9], v, e, KEYS[4], ARGV[4], ARGV[5])}
