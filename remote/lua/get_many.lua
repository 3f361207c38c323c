#!lua flags=no-writes
-- Reads many keys in one step, as get.lua reads one (tombstones, not-found
-- markers, tagged values, graced values past their fresh time, values older
-- than an invalidation of one of their tags and keys below the clear floor
-- are absent): each value with its version and remaining (fresh) TTL, and
-- the namespace counter when the read ran.
-- KEYS: seq, meta, then the value keys
-- Returns {counter, {value | false, version, pttl[, tags]}...} in the order
-- of KEYS (tags as get.lua).
local counter = redis.call('GET', KEYS[1]) or '0'
local floor = floor_of(KEYS[2])
local now = nil
local out = {counter}
for i = 3, #KEYS do
  local h = redis.call('HMGET', KEYS[i], 'value', 'version', 'outdated', 'fresh_until', 'tags')
  local ver = tonumber(h[2]) or 0
  local r = {false, '', 0}
  if h[1] and h[2] and not h[3] and ver >= floor and not tag_dead(ver, h[5], KEYS[2]) then
    local pt = redis.call('PTTL', KEYS[i])
    if h[4] then
      if not now then now = now_ms() end
      local left = tonumber(h[4]) - now
      if left > 0 then
        if pt < 0 or left < pt then pt = left end
        r = {h[1], h[2], pt}
      end
    else
      r = {h[1], h[2], pt}
    end
    if r[1] and h[5] and h[5] ~= '' then r[4] = h[5] end
  end
  out[#out + 1] = r
end
return out
