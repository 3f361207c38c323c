#!lua flags=no-writes
-- Server-assisted invalidation (lib/tracking.c): whether each value hash
-- still holds what a synccache set event carried. A pod asks when Redis
-- reported the key modified in the same event-loop turn as that event, so
-- another client's write right after the script (which Redis merges into
-- the same invalidation) cannot hide behind it.
-- KEYS: value keys
-- ARGV: per key, "<version>:<sha1hex of the value>", then optionally '1':
--       the caller's copies may hold other bytes than Redis at the same
--       version (its on_set_local hook transformed them)
-- Returns one integer per key: 1 = the same value and version; 2 = a later
-- version (a later synccache write: the copy is stale, but no other client
-- needs to have written the key); 0 = anything else; with the '1', a key
-- that holds that version with other bytes answers {3, value} instead of 0
-- (the caller compares its hook's output for those bytes with its copy).
-- Versions are compared as decimal strings: a Lua number holds 53 bits.
local function later(have, want)
  if #have ~= #want then
    return #have > #want
  end
  return have > want
end
local out = {}
for i, k in ipairs(KEYS) do
  local h = redis.pcall('HMGET', k, 'version', 'value')
  local verdict = 0
  if type(h) == 'table' and h[1] and h[2] then
    local want = string.match(ARGV[i], '^(%d+):')
    if (h[1] .. ':' .. redis.sha1hex(h[2])) == ARGV[i] then
      verdict = 1
    elseif want and string.match(h[1], '^[1-9]%d*$') and later(h[1], want) then
      verdict = 2
    elseif want and h[1] == want and ARGV[#KEYS + 1] == '1' then
      verdict = {3, h[2]}
    end
  end
  out[i] = verdict
end
return out
