#!lua flags=allow-oom
-- Hands a closing consumer's unacknowledged entries back to the other
-- pods: their idle time is set far beyond any writeback_claim_ms, so the
-- next XAUTOCLAIM of any pod takes them at once. A consumer holding nothing
-- is removed from the group.
-- KEYS: wb
-- ARGV: group, consumer, idle_ms
-- Returns the number of entries handed back.
local g, c = ARGV[1], ARGV[2]
if not find_group(KEYS[1], g) then return 0 end
local n = 0
local from = '-'
while true do
  local p = redis.call('XPENDING', KEYS[1], g, from, '+', 1000, c)
  if #p == 0 then break end
  local ids = {}
  for i, e in ipairs(p) do ids[i] = e[1] end
  for i = 1, #ids, 500 do
    local args = {KEYS[1], g, c, 0}
    for j = i, math.min(i + 499, #ids) do args[#args + 1] = ids[j] end
    args[#args + 1] = 'IDLE'
    args[#args + 1] = ARGV[3]
    args[#args + 1] = 'JUSTID'
    redis.call('XCLAIM', unpack(args))
  end
  n = n + #ids
  from = '(' .. ids[#ids]
  if #p < 1000 then break end
end
if n == 0 then
  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], g, c)
end
return n
