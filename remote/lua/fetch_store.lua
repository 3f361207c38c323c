#!lua
-- Stores loaded results, each only if the caller still holds the key's load
-- lock (the fencing token of fetch_lock.lua: a set, delete, tag or clear
-- since revoked it, and a load that began before them must not overwrite
-- them). Each stored key gets a fresh version, its TTL, the log entry and
-- the event, exactly like set.lua; a "not found" becomes an empty marker
-- (version and empty=1, no value) published as an invalidate.
-- KEYS: seq, meta, log, value key 1..n
-- ARGV: fmt, log_len, channel, token, then 9 per key:
--       kind ('v' value | 'e' empty marker), value, ttl_ms ('0': none),
--       event template p0, p1, p2, p3, grace_ms ('0': none), tags ("\n"
--       between them; '': none; an empty marker is fenced by them but does
--       not keep them). With a grace and a TTL, the value is kept
--       ttl + grace ms, and fresh_until (Redis ms) says when its TTL ended;
--       last, seen (see take()).
-- Returns {r1, ..., rn}: ri = {version, 1 | publish error text}, or
-- {'0', 1} when the lock was no longer the caller's (nothing written).
local floor = floor_of(KEYS[2])
local out = {}
for i = 4, #KEYS do
  local k = KEYS[i]
  local h = redis.call('HMGET', k, 'lock', 'lock_seq')
  local a = 4 + (i - 4) * 9
  -- (a load whose lock predates an invalidation of one of the tags it
  -- stores read its source before that invalidation: fenced as well)
  if h[1] ~= ARGV[4] then
    out[#out + 1] = {'0', 1}
  elseif tonumber(h[2] or '0') < floor or tag_dead(tonumber(h[2] or '0'), ARGV[a + 9], KEYS[2]) then
    -- still ours, but fenced by a clear (or a lost {ns}:meta, which counts
    -- as one: floor_of) or a tag invalidation: free the lock at once so the
    -- next fetch loads without waiting for it to lapse
    redis.call('HDEL', k, 'lock', 'lock_until', 'lock_seq')
    out[#out + 1] = {'0', 1}
  else
    local v, e = take(KEYS[1], KEYS[2], KEYS[3], ARGV[#ARGV], ARGV[2])
    local vs = string.format('%d', v)
    -- A marker over a key that keeps a number (a delete's tombstone, a
    -- dead value's number) keeps that number as long as it would have
    -- lived: a marker expiring sooner would give the key 0 (or the clear
    -- floor) again, a number it had before the delete, and a snapshot of
    -- that number would match again (ABA). The marker itself is believed
    -- only until empty_until (Redis ms); past it the hash is a tombstone.
    local keep = nil
    if ARGV[a + 1] == 'e' and redis.call('HEXISTS', k, 'version') == 1 then
      keep = redis.call('PTTL', k)
    end
    -- (the hash replaced, never deleted first: replace_hash)
    if ARGV[a + 1] == 'e' then
      local ttl = tonumber(ARGV[a + 3])
      if keep and ttl > 0 and (keep == -1 or keep > ttl) then
        replace_hash(k, {'version', vs, 'empty', string.format('%d', now_ms() + ttl)})
        if keep > 0 then redis.call('PEXPIRE', k, keep) end
      else
        replace_hash(k, {'version', vs, 'empty', '1'})
        keep = nil
      end
    else
      replace_hash(k, {'value', ARGV[a + 2], 'version', vs})
    end
    local ttl, grace = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 8])
    if ARGV[a + 9] ~= '' and ARGV[a + 1] ~= 'e' then redis.call('HSET', k, 'tags', ARGV[a + 9]) end
    if ttl > 0 and grace > 0 and ARGV[a + 1] ~= 'e' then
      local t = now_ms()
      redis.call('HSET', k, 'fresh_until', string.format('%d', t + ttl), 'grace_until',
                 string.format('%d', t + ttl + grace))
      redis.call('PEXPIRE', k, string.format('%d', ttl + grace))
    elseif ttl > 0 and not keep then
      redis.call('PEXPIRE', k, ARGV[a + 3])
    end
    out[#out + 1] = {vs, emit(ARGV[1], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], v, e, KEYS[3], ARGV[2],
                              ARGV[3])}
  end
end
return out
