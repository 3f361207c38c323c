#!lua flags=no-writes
-- Reads a value with its version, remaining TTL and the namespace counter at
-- the moment of the read: the value is known current up to that counter,
-- which is what lets a pod order this read against events (docs/protocol.md,
-- rule 6). A tombstone (no value), a key below the clear floor, a value
-- tagged outdated by sc_tag_deleted, a value past its fresh time (kept only
-- for its grace: fresh_until, sc_fetch_ex) and a value written before an
-- invalidation of one of its tags (sc_invalidate_tag) are absent. The TTL of
-- a graced value is what is left of its fresh time.
-- KEYS: value key, seq, meta
-- Returns {value | false, version, pttl, counter[, tags]} (tags: the key's
-- "\n"-joined tags, when it has any).
local counter = redis.call('GET', KEYS[2]) or '0'
local h = redis.call('HMGET', KEYS[1], 'value', 'version', 'outdated', 'fresh_until', 'tags')
if not h[1] or not h[2] or h[3] then return {false, '', 0, counter} end
local ver = tonumber(h[2])
local floor = floor_of(KEYS[3])
if ver and ver < floor then return {false, '', 0, counter} end
if tag_dead(ver, h[5], KEYS[3]) then return {false, '', 0, counter} end
local pt = redis.call('PTTL', KEYS[1])
if h[4] then
  local left = tonumber(h[4]) - now_ms()
  if left <= 0 then return {false, '', 0, counter} end
  if pt < 0 or left < pt then pt = left end
end
if h[5] and h[5] ~= '' then return {h[1], h[2], pt, counter, h[5]} end
return {h[1], h[2], pt, counter}
