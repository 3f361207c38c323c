#!lua
-- Collects one SCAN batch of a cleared namespace: unlinks the keys whose
-- version is below the floor (they are already absent to every reader);
-- keys written since the clear stay.
-- KEYS: value keys of one batch
-- ARGV: floor
-- Returns the number of keys unlinked.
local floor = tonumber(ARGV[1])
local n = 0
for i = 1, #KEYS do
  local v = redis.pcall('HGET', KEYS[i], 'version')
  if type(v) ~= 'string' or not tonumber(v) or tonumber(v) < floor then
    redis.call('UNLINK', KEYS[i])
    n = n + 1
  end
end
return n
