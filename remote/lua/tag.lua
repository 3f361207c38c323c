#!lua
-- Tags a key as deleted (rockscache's delayed delete): a fresh version, the
-- value kept but marked outdated for delay_ms (eventual fetches may serve it
-- while another pod reloads; gets and strong fetches never do), any load
-- lock revoked, the log entry and an invalidate event. A key with no live
-- value (none, below the clear floor, or written before an invalidation of
-- one of its tags) is deleted as by delete.lua (a tombstone when
-- tombstone_ttl_ms).
-- KEYS: value key, seq, meta, log
-- ARGV: delay_ms ('0': delete now), tombstone_ttl_ms, fmt, log_len, channel,
--       p0, p1, p2, p3, seen (see take())
-- Returns {version, 1 | publish error text}.
local bad = check_hash(KEYS[1])
if bad then return bad end
-- (read before take(): tag_dead reads {ns}:tags, which the script does
-- not declare, and a cluster node migrating the slot without that key
-- stops the script there with ASK; its writes so far would stay)
local h = redis.call('HMGET', KEYS[1], 'value', 'version', 'tags')
local floor = floor_of(KEYS[3])
-- (a value older than an invalidation of one of its tags is absent too: a
-- fresh version must not make it live again)
local live = h[1] and h[2] and not (tonumber(h[2]) < floor) and
             not tag_dead(tonumber(h[2]), h[3], KEYS[3])
local v, e = take(KEYS[2], KEYS[3], KEYS[4], ARGV[#ARGV], ARGV[4])
local vs = string.format('%d', v)
if live and ARGV[1] ~= '0' then
  redis.call('HDEL', KEYS[1], 'lock', 'lock_until', 'lock_seq', 'empty')
  redis.call('HSET', KEYS[1], 'version', vs, 'outdated', '1')
  local pt = redis.call('PTTL', KEYS[1])
  if pt < 0 or pt > tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
else
  delete_value(KEYS[1], vs, ARGV[2])
end
return {vs, emit(ARGV[3], ARGV[6], ARGV[7], ARGV[8], ARGV[9], v, e, KEYS[4], ARGV[4], ARGV[5])}
