#!lua flags=no-writes
-- Server-assisted invalidation (lib/tracking.c): whether each value hash
-- still holds what a synccache set event carried. A pod asks when Redis
-- reported the key modified in the same event-loop turn as that event, so
-- another client's write right after the script (which Redis merges into
-- the same invalidation) cannot hide behind it.
-- KEYS: value keys
-- ARGV: per key, "<version>:<sha1hex of the value>"
-- Returns one integer per key: 1 = the same value and version, 0 = not.
local out = {}
for i, k in ipairs(KEYS) do
  local h = redis.pcall('HMGET', k, 'version', 'value')
  local same = 0
  if type(h) == 'table' and h[1] and h[2] and (h[1] .. ':' .. redis.sha1hex(h[2])) == ARGV[i] then
    same = 1
  end
  out[i] = same
end
return out
