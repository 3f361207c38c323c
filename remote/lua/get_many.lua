#!lua flags=no-writes
-- Reads many keys in one step, as get.lua reads one (tombstones, not-found
-- markers, tagged values and keys below the clear floor are absent): each value with its
-- version and remaining TTL, and the namespace counter when the read ran.
-- KEYS: seq, meta, then the value keys
-- Returns {counter, {value | false, version, pttl}...} in the order of KEYS.
local counter = redis.call('GET', KEYS[1]) or '0'
local floor = tonumber(redis.call('HGET', KEYS[2], 'floor') or '0') or 0
local out = {counter}
for i = 3, #KEYS do
  local h = redis.call('HMGET', KEYS[i], 'value', 'version', 'outdated')
  if h[1] and h[2] and not h[3] and (tonumber(h[2]) or 0) >= floor then
    out[#out + 1] = {h[1], h[2], redis.call('PTTL', KEYS[i])}
  else
    out[#out + 1] = {false, '', 0}
  end
end
return out
