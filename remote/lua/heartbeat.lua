#!lua flags=allow-oom
-- (allow-oom: it writes only when seeding a missing counter, and a pod must
-- be able to resynchronise and prove it is in sync while Redis is full.)
-- Publishes a heartbeat carrying the current counter and epoch (read in the
-- same step, so every event up to that counter was published before it).
-- No version is taken and nothing is logged. The namespace's signing secret
-- is created from the caller's random candidate when there is none yet.
-- With a fourth key (the pod's tracking canary, lib/tracking.c) it also
-- sets that key for ARGV[8] ms: Redis reports the write to the pod's
-- CLIENT TRACKING redirect, which proves the invalidation path works.
-- KEYS: seq, meta, log[, canary]
-- ARGV: fmt, channel, p0, p1, p2, p3, secret candidate[, canary ttl ms]
-- Returns {counter, epoch, redis time in ms, secret}.
redis.call('HSETNX', KEYS[2], 'secret', ARGV[7])
local v, e = current(KEYS[1], KEYS[2], KEYS[3])
local t = now_ms()
if KEYS[4] then
  redis.call('SET', KEYS[4], '1', 'PX', ARGV[8])
end
redis.call(PUBLISH, ARGV[2],
  sign(ARGV[1], ARGV[3] .. num(ARGV[1], v) .. ARGV[4] .. num(ARGV[1], t) .. ARGV[5] .. e .. ARGV[6]))
return {string.format('%d', v), e, string.format('%d', t), SECRET}
