#!lua flags=allow-oom
-- (allow-oom: it writes only when seeding a missing counter, and a pod must
-- be able to resynchronise and prove it is in sync while Redis is full.)
-- What a pod needs to (re)join the stream: the counter and epoch (seeded when
-- absent), the Redis clock, and the log's copy of the event at the pod's last
-- sequence, so the pod can tell whether its history is still Redis' history
-- (a restart from an older snapshot keeps the epoch but not the events).
-- KEYS: seq, meta, log
-- ARGV: last_seq ('0': the counter itself, for a first sync), a random
--       candidate for the namespace's signing secret (kept if there is none)
-- Returns {counter, epoch, time_ms, event at that sequence | false, secret}.
redis.call('HSETNX', KEYS[2], 'secret', ARGV[2])
local v, e = current(KEYS[1], KEYS[2], KEYS[3])
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
