#!lua flags=no-writes
-- Reads a value with its version, remaining TTL and the namespace counter at
-- the moment of the read: the value is known current up to that counter,
-- which is what lets a pod order this read against events (docs/protocol.md,
-- rule 6). A tombstone (no value) or a key below the clear floor is absent.
-- KEYS: value key, seq, meta
-- Returns {value | false, version, pttl, counter}.
local counter = redis.call('GET', KEYS[2]) or '0'
local h = redis.call('HMGET', KEYS[1], 'value', 'version', 'outdated')
-- (a value tagged outdated by sc_tag_deleted is absent too)
if not h[1] or not h[2] or h[3] then return {false, '', 0, counter} end
local floor = redis.call('HGET', KEYS[3], 'floor')
if floor and tonumber(h[2]) and tonumber(h[2]) < tonumber(floor) then return {false, '', 0, counter} end
return {h[1], h[2], redis.call('PTTL', KEYS[1]), counter}
