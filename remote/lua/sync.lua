#!lua flags=allow-oom
-- (allow-oom: it writes only when seeding a missing or rolled-back counter,
-- and a pod must be able to resynchronise and prove it is in sync while
-- Redis is full.)
-- What a pod needs to (re)join the stream: the counter and epoch (seeded when
-- absent), the Redis clock, and the log's copy of the event at the pod's last
-- sequence, so the pod can tell whether its history is still Redis' history
-- (a restart from an older snapshot keeps the epoch but not the events).
-- A counter behind the pod's last sequence lost writes: it starts a new
-- history past them at once, as take() would at the next write, so that
-- no write in between hands their versions out again.
-- A counter behind a version the pod saw acknowledged whose event never came
-- back (an own write, then the subscription dropped) lost writes too, and
-- is moved past it the same way.
-- KEYS: seq, meta, log
-- ARGV: last_seq ('0': the counter itself, for a first sync), a random
--       candidate for the namespace's signing secret (kept if there is none),
--       the highest version the pod has seen (remote/remote.c adds it)
-- Returns {counter, epoch, time_ms, event at that sequence | false, secret}.
-- A log of another type fails the sync with its name (no retry helps).
local bad = wrong_type(KEYS[3], 'stream', 'the synccache event log')
if bad then return redis.error_reply(bad) end
redis.call('HSETNX', KEYS[2], 'secret', ARGV[2])
local v, e = current(KEYS[1], KEYS[2], KEYS[3])
local last = tonumber(ARGV[1]) or 0
local least = tonumber(ARGV[3]) or 0
if least < last then least = last end
if v < least then
  v = seed(KEYS[1], KEYS[2], KEYS[3], least)
  e = epoch_of(KEYS[2], v, v)
end
local at = false
local seq = ARGV[1]
if seq == '0' then seq = string.format('%d', v) end
do
  local r = redis.call('XRANGE', KEYS[3], seq .. '-0', seq .. '-0')
  if r[1] then
    local f = r[1][2]
    for i = 1, #f, 2 do
      if f[i] == 'e' then at = f[i + 1] end
    end
  end
end
return {string.format('%d', v), e, string.format('%d', now_ms()), at, SECRET}
