#!lua flags=allow-oom
-- Releases load locks the caller still holds (a failed loader, a store
-- Redis refused), so the next fetch loads at once. A hash that held only
-- the lock disappears with it. (allow-oom: it only deletes, and a full
-- Redis, which refuses the store, must not keep the lock until it lapses.)
-- KEYS: value keys
-- ARGV: token
-- Returns the number of locks released.
local n = 0
for i = 1, #KEYS do
  if redis.call('HGET', KEYS[i], 'lock') == ARGV[1] then
    redis.call('HDEL', KEYS[i], 'lock', 'lock_until', 'lock_seq')
    n = n + 1
  end
end
return n
