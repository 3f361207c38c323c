#!lua
-- sc_fetch's first step for one or many keys of a namespace (all in its
-- {ns} slot): read each key's value, or take its load lock, in one round
-- trip. The lock lives in the key's hash: lock = the caller's token (a
-- fencing token: fetch_store.lua stores only while it is still there),
-- lock_until = Redis ms when it lapses, lock_seq = the counter when taken
-- (a clear after that revokes it). Every time is Redis' clock. A lock on a
-- missing key leaves a hash holding only the lock, so no key without a TTL
-- is left behind if the loader's pod dies. The hash outlives lock_until
-- (KEEP_LOCKS x lock_ttl_ms): past lock_until another pod may take the lock
-- over (a new token fences the old load), but while none has, the token is
-- still the key's only claim and a slow loader's result is stored; a hash
-- lapsing with lock_until threw such a load away with nobody to replace it
-- (SC_STRONG then loaded again and again until SC_ERR_LOCKED).
-- KEYS: seq, meta, value key 1..n (and, named from meta, {ns}:wb and {ns}:wbq)
-- ARGV: token, lock_ttl_ms, serve_stale ('1': eventual), then one
--       have_version per key ('0': none; else confirm the caller's copy)
-- Returns {counter, now_ms, r1, ..., rn} with each ri one of
--   {'c'}                        the caller's copy (have_version) is current
--   {'v', value, version, pttl, gpttl, tags}  a current value; pttl: until
--                                it stops being fresh; gpttl: until its grace
--                                ends (-2: it has no grace); tags: its tags
--   {'e', version, pttl}         a cached "not found" (empty marker)
--   {'l'}                        the caller holds the lock now: load
--   {'w', lock_until}            another load holds the lock: wait
--   'l' and 'w' add value, version, gpttl, past_ms, tags when the key holds a
--   graced value: past its fresh time (fresh_until, Redis ms) by past_ms,
--   kept until its grace ends (gpttl); sc_fetch_ex serves it on failure
--   {'s', value, version, lock_until}  the outdated value of a tagged key
--                                (serve_stale) while another load holds the lock,
--                                or the newest queued write-behind value (see below)
local counter = redis.call('GET', KEYS[1]) or '0'
local now = now_ms()
local floor = floor_of(KEYS[2])
local ttl = tonumber(ARGV[2])
local KEEP_LOCKS = 10
local keep = ttl * KEEP_LOCKS
local out = {counter, string.format('%d', now)}
-- Every key is read before any lock is written: a script's writes before an
-- error stay, so a key Redis holds as another type (WRONGTYPE) must fail
-- the batch before it has locked the keys ahead of it, locks nobody holds.
-- A key with a write-behind write still queued (not yet saved) is never
-- loaded: the store does not hold that write yet, and a load would cache
-- and answer what the write replaced (a deleted value back, an overwritten
-- one). Where a load would start, the fetch answers the newest queued write
-- instead, what the store will hold: its value as {'s', ...} (served, never
-- kept: the next fetch asks again), a delete as "not found" (pttl 1 ms),
-- each with the key's number (key_version).
local ns = string.sub(KEYS[2], 1, -5)
local wb, wbq = ns .. 'wb', ns .. 'wbq'
-- (the index is made again first if Redis lost it: wbq_restore)
local restored = false
local function queued(k)
  if not restored then
    wbq_restore(wb)
    restored = true
  end
  local id = redis.call('HGET', wbq, k)
  if not id then return nil end
  local e = redis.call('XRANGE', wb, id, id)
  if not e[1] then
    -- the queue lost it (deleted, evicted): nothing to wait for
    redis.call('HDEL', wbq, k)
    return nil
  end
  local x = field(e[1][2], 'x')
  -- (with the key's number, not the write's: the value was not stored
  -- again, and a compare-and-set made against what the fetch answered
  -- must match what sc_version_of reads)
  local kv = string.format('%d', key_version(k, KEYS[2]))
  if x then return {'s', x, kv, string.format('%d', now)} end
  return {'e', kv, 1}
end
-- Whether a key's hash h (as read below) answers the fetch by itself: a
-- live value or a believed not-found marker, not outdated, not past its
-- fresh time.
local function current(h, dead)
  local fu, eu = tonumber(h[7]), h[3] and h[3] ~= '1' and tonumber(h[3]) or nil
  return tonumber(h[2]) and not dead and not h[4] and not (fu and fu <= now) and
         (h[1] or (h[3] and (not eu or eu > now)))
end
-- The queue is read only for a key its hash does not answer: {ns}:wbq, like
-- {ns}:tags (tag_dead), is a key the script does not declare, and a Redis
-- Cluster node migrating the slot answers ASK for one it does not hold (no
-- write queued), which fails the script; a fetch of a current value must
-- not depend on it. Both are read here, before any lock is written.
local hs, ds, qs = {}, {}, {}
for i = 3, #KEYS do
  local h = redis.call('HMGET', KEYS[i], 'value', 'version', 'empty', 'outdated', 'lock', 'lock_until',
                       'fresh_until', 'tags', 'grace_until')
  local ver = tonumber(h[2])
  hs[i], ds[i] = h, ver and (ver < floor or tag_dead(ver, h[8], KEYS[2]))
  if not current(h, ds[i]) then qs[i] = queued(KEYS[i]) end
end
for i = 3, #KEYS do
  local k = KEYS[i]
  local have = ARGV[i + 1]
  local h = hs[i]
  local ver = tonumber(h[2])
  local dead = ds[i]
  local fu = tonumber(h[7])
  local graced = fu and fu <= now
  -- when its grace ends (Redis ms): a lock taken on the key may have
  -- stretched the hash's TTL past it (keys stored without the field: PTTL)
  local gu = tonumber(h[9])
  -- a marker is believed until empty = Redis ms (fetch_store.lua keeps the
  -- hash longer when it holds a tombstone's number); '1': its whole TTL
  local eu = h[3] and h[3] ~= '1' and tonumber(h[3]) or nil
  local r
  if current(h, dead) then
    if have ~= '0' and tonumber(have) == ver then
      r = {'c'}
    elseif h[1] then
      local pt = redis.call('PTTL', k)
      if fu then
        r = {'v', h[1], h[2], fu - now, pt, h[8] or ''}
      else
        r = {'v', h[1], h[2], pt, -2, h[8] or ''}
      end
    else
      r = {'e', h[2], eu and (eu - now) or redis.call('PTTL', k)}
    end
  elseif qs[i] then
    r = qs[i]
  else
    local lu = tonumber(h[6])
    if h[5] and not dead and lu and lu > now then
      -- (never a value past its fresh time: it is only kept for
      -- stale-if-error answers)
      if ARGV[3] == '1' and h[1] and h[4] and ver and not graced and (h[4] == '1' or tonumber(h[4]) > now) then
        r = {'s', h[1], h[2], h[6]}
      else
        r = {'w', h[6]}
      end
    else
      -- A dead value goes, but never the key's number (a tag's invalidation
      -- version, the clear floor): a failed or lapsed load would otherwise
      -- hand the key a number it had before the write that died, and a
      -- compare-and-set made against that number would match again (ABA).
      -- The number stays as a tombstone for as long as the value would have.
      local kept = false
      local lock = {'lock', ARGV[1], 'lock_until', string.format('%d', now + ttl), 'lock_seq', counter}
      if dead then
        -- (the hash replaced, never deleted first: replace_hash)
        local kv, left = key_version(k, KEYS[2]), redis.call('PTTL', k)
        if kv > floor then
          replace_hash(k, {'version', string.format('%d', kv), unpack(lock)})
          if left > 0 then redis.call('PEXPIRE', k, left) end
          kept = left == -1
        else
          replace_hash(k, lock)
        end
      else
        redis.call('HSET', k, unpack(lock))
      end
      -- (a lock only stretches a TTL; it gives none to a number kept for ever)
      -- An outdated value stays answerable only for what was left of its
      -- tag_delete_delay_ms: stretched for the lock, its hash notes when
      -- that ends (outdated = Redis ms), as grace_until does for a grace.
      local pt = redis.call('PTTL', k)
      if pt < keep and not kept then
        if not dead and h[1] and h[4] == '1' and pt > 0 then
          redis.call('HSET', k, 'outdated', string.format('%d', now + pt))
        end
        redis.call('PEXPIRE', k, string.format('%d', keep))
      end
      r = {'l'}
    end
    if graced and not dead and not h[4] and h[1] and ver and not (gu and gu <= now) then
      r[#r + 1] = h[1]
      r[#r + 1] = h[2]
      r[#r + 1] = gu and (gu - now) or redis.call('PTTL', k)
      r[#r + 1] = now - fu
      r[#r + 1] = h[8] or ''
    end
  end
  out[#out + 1] = r
end
return out
