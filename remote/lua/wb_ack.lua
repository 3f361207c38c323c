#!lua flags=allow-oom
-- Acknowledges saved entries of the write-behind queue and trims the queue
-- of acknowledged entries only: everything below the oldest entry still
-- pending (taken by some consumer and not acknowledged), or, when none is
-- pending, everything the group has been delivered.
-- KEYS: wb
-- ARGV: group, id, id, ...
-- Returns the number of entries acknowledged.
local g = ARGV[1]
local n = 0
-- Saved: a key whose newest queued write is among them has nothing queued
-- any more ({ns}:wbq, see queue()); a fetch may load it again.
local wbq, prefix = wbq_key(KEYS[1]), string.sub(KEYS[1], 1, -3) .. 'k:'
for i = 2, #ARGV do
  local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  local k = e[1] and field(e[1][2], 'k')
  if k and redis.call('HGET', wbq, prefix .. k) == ARGV[i] then
    redis.call('HDEL', wbq, prefix .. k)
  end
end
local ids = {}
for i = 2, #ARGV do
  ids[#ids + 1] = ARGV[i]
  if #ids == 500 or i == #ARGV then
    n = n + redis.call('XACK', KEYS[1], g, unpack(ids))
    ids = {}
  end
end
local grp = find_group(KEYS[1], g)
if grp then
  local p = redis.call('XPENDING', KEYS[1], g)
  local min
  if p[1] > 0 then
    min = p[2]
  else
    local ms, seq = id_parts(field(grp, 'last-delivered-id'))
    min = string.format('%d-%d', ms, seq + 1)
  end
  redis.call('XTRIM', KEYS[1], 'MINID', min)
end
return n
