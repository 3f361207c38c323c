-- Shared helpers, inserted after each script's first line at build time.
--
-- Lua in Redis has only doubles. Numbers leave a script through
-- string.format('%d', n) (tostring would print 1.7e+15); versions stay below
-- 2^53, so doubles hold them exactly.

-- A new namespace epoch: 16 hex digits from the Redis clock in us and the
-- counter, so two epochs made in one microsecond still differ.
local function new_epoch(v)
  local t = redis.call('TIME')
  local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  return string.format('%013x%03x', us, v % 4096)
end

-- The publish command. On Redis Cluster the scripts are loaded with this
-- line reading 'SPUBLISH' (remote/scripts.c): sharded pub/sub, served by the
-- namespace's own shard.
local PUBLISH = 'PUBLISH'

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The WRONGTYPE text for a key Redis holds as another type than want
-- ('none' passes: the script creates it), or nil. Scripts check before
-- their first write: a script's writes before an error stay.
local function wrong_type(key, want, what)
  local ty = redis.call('TYPE', key).ok
  if ty ~= 'none' and ty ~= want then
    return 'WRONGTYPE ' .. key .. ' is a ' .. ty .. ', not ' .. what
  end
  return nil
end

-- The counter's starting point when it is absent or behind: the Redis clock
-- in us, and never below the log's last id (XADD needs ever-growing ids),
-- the clear floor (a version below it would be absent as soon as written)
-- nor at_least. A counter that starts again starts a new history, hence a
-- new epoch.
local function seed(seq, meta, log, at_least)
  -- (it reads the log before its first write: a log of another type fails
  -- here, named, and not as Redis' bare WRONGTYPE)
  local bad = wrong_type(log, 'stream', 'the synccache event log')
  if bad then error({err = bad}) end
  local t = redis.call('TIME')
  local s = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local floor = tonumber(redis.call('HGET', meta, 'floor') or '0') or 0
  if floor > s then s = floor end
  if at_least > s then s = at_least end
  local top = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)
  if top[1] then
    local last = tonumber(string.match(top[1][1], '^(%d+)-'))
    if last and last > s then s = last end
  end
  -- (a lost meta beside a log that outlived it: the namespace had a
  -- history, and its clear floor went with the meta, see epoch_of)
  if top[1] and redis.call('HEXISTS', meta, 'epoch') == 0 then
    redis.call('HSET', meta, 'floor', string.format('%d', s))
  end
  redis.call('SET', seq, string.format('%d', s))
  redis.call('HSET', meta, 'epoch', new_epoch(s))
  return s
end

-- The namespace's signing secret, read by current() and take() for sign().
local SECRET = false

-- The namespace's epoch (made when missing: a history nobody recorded is a
-- new one) and, into SECRET, its signing secret. The epoch is in {ns}:meta
-- from the first script on, so a meta without one beside a counter was lost
-- (an allkeys-* maxmemory-policy evicts any key) and its clear floor and
-- highest tag invalidation with it: the namespace counts as cleared at the
-- counter before this script's write (at), the newest version anything
-- could have been written at, so nothing a lost clear or tag invalidation
-- made absent comes back (floor_of is what readers see until then).
local function epoch_of(meta, v, at)
  local m = redis.call('HMGET', meta, 'epoch', 'secret')
  SECRET = m[2]
  if m[1] then return m[1] end
  local e = new_epoch(v)
  redis.call('HSET', meta, 'epoch', e, 'floor', string.format('%d', at))
  return e
end

-- The clear floor: a key whose version is below it is absent. A meta that
-- was lost (no epoch, see epoch_of) has the counter as its floor, as the
-- first script writing the meta again will record; with no counter either
-- there is nothing to go by (a new namespace, or the next seed decides).
-- {ns}:seq is named from {ns}:meta, same slot.
local function floor_of(meta)
  local m = redis.call('HMGET', meta, 'floor', 'epoch')
  if m[2] then return tonumber(m[1] or '0') or 0 end
  return tonumber(redis.call('GET', string.sub(meta, 1, -5) .. 'seq') or '0') or 0
end

-- The current counter and epoch, seeding them when absent.
local function current(seq, meta, log)
  local v = redis.call('GET', seq)
  if not v then
    v = seed(seq, meta, log, 0)
  else
    v = tonumber(v)
  end
  return v, epoch_of(meta, v, v)
end

-- The last version: Lua numbers are doubles, exact up to 2^53 (INCR past
-- it returns a rounded number: 2^53 + 1 reads as 2^53).
local LAST_VERSION = 9007199254740991 -- 2^53 - 1

local function past_last_version(seq)
  error({err = 'ERR synccache: the namespace counter ' .. seq .. ' would pass 2^53 - 1, the last version a Lua ' ..
               'number holds exactly: the write is refused'})
end

-- Takes the next version: INCR, seeding only when INCR found no counter or
-- found it at or below seen, the highest version the calling pod has seen
-- (remote/remote.c passes it as the script's last argument). A counter
-- behind what a pod saw means Redis lost writes (restarted from an older
-- snapshot, a replica promoted without them): the versions after it were
-- handed out once already, and taking them again would let a
-- compare-and-set made against a lost write match a new one (ABA). The new
-- history starts past them (at the clock, which a counter only passes at
-- more than one write per us) with a new epoch, so pods flush as they do
-- for any rollback.
--
-- A script's writes before an error stay, so a command the user's ACL
-- refuses must fail before the first one: take() runs first in every
-- writing script, and checks the XADD its emit() will make to the log
-- (log_len, '0': no log). redis.acl_check_cmd: Redis >= 7.
local function take(seq, meta, log, seen, log_len)
  if log_len ~= '0' then
    if redis.acl_check_cmd and not redis.acl_check_cmd('XADD', log, 'MAXLEN', '~', '1', '1-0', 'e', 'x') then
      error({err = 'NOPERM this user has no permissions to run the \'xadd\' command on the event log ' .. log})
    end
    -- (likewise a log key of another type, which that XADD would refuse)
    local bad = wrong_type(log, 'stream', 'the synccache event log')
    if bad then error({err = bad}) end
  end
  local v = redis.call('INCR', seq)
  seen = tonumber(seen) or 0
  -- Past LAST_VERSION a version would be handed out twice (ABA): the write
  -- is refused before it changes anything (the INCR is undone).
  if v > LAST_VERSION or ((v == 1 or v <= seen) and seen >= LAST_VERSION) then
    if v == 1 then redis.call('DEL', seq) else redis.call('DECR', seq) end
    past_last_version(seq)
  end
  if v == 1 or v <= seen then
    v = seed(seq, meta, log, seen) + 1
    -- (a clear floor or log at the last version: the seeded counter stays
    -- there, and nothing is written past it)
    if v > LAST_VERSION then past_last_version(seq) end
    redis.call('SET', seq, string.format('%d', v))
  end
  return v, epoch_of(meta, v, v - 1)
end

-- Signs an event the caller's template built with a mac field of 40 '0's
-- last: mac = sha1hex(secret .. sha1hex(secret .. ev)) (sync/event.c checks
-- it). Without a secret yet (a pod creates it when it syncs) the event goes
-- out unsigned, and pods take it from the log instead of the channel.
local function sign(fmt, ev)
  if not SECRET then return ev end
  local mac = redis.sha1hex(SECRET .. redis.sha1hex(SECRET .. ev))
  if fmt == 'j' then return string.sub(ev, 1, #ev - 42) .. mac .. '"}' end
  return string.sub(ev, 1, #ev - 40) .. mac
end

-- A number as the event template expects it: 8 big-endian bytes for
-- msgpack ('m'), decimal for JSON ('j'). struct.pack writes the bytes in C
-- (numbers here are integers below 2^53, which it converts exactly).
local function num(fmt, n)
  if fmt == 'j' then return string.format('%d', n) end
  return struct.pack('>I8', n)
end

-- The event from the caller's template (parts p0..p3 around version, time
-- and epoch), appended to the log unless it is off, then published. The
-- publish runs last and under pcall: the write is already in Redis and in
-- the log, so a refused PUBLISH must not turn into a reported failure; pods
-- find the event in the log when a heartbeat shows the sequence moved.
-- Returns 1 when published, else the error text.
local function emit(fmt, p0, p1, p2, p3, v, e, log, log_len, channel)
  local ev = sign(fmt, p0 .. num(fmt, v) .. p1 .. num(fmt, now_ms()) .. p2 .. e .. p3)
  if log_len ~= '0' then
    redis.call('XADD', log, 'MAXLEN', '~', log_len, string.format('%d', v) .. '-0', 'e', ev)
  end
  local ok = redis.pcall(PUBLISH, channel, ev)
  if type(ok) == 'table' and ok.err then return ok.err end
  return 1
end

local function check_hash(key)
  local bad = wrong_type(key, 'hash', 'a synccache hash')
  return bad and redis.error_reply(bad)
end

-- Write-behind (remote/behind.c). The queue {ns}:wb is a stream read by one
-- consumer group; it is never capped, only acknowledged entries are trimmed.

-- Refuses a queue key that is not a stream before anything is written.
local function check_stream(key)
  local bad = wrong_type(key, 'stream', 'a synccache write-behind stream')
  return bad and redis.error_reply(bad)
end

-- {ns}:wbq, named from the queue {ns}:wb: value key -> the id of the newest
-- queued entry of that key, until a save of it is acknowledged (wb_ack.lua).
-- A fetch reads it before it loads (fetch_lock.lua): the store does not hold
-- a queued write yet, so loading it would go back past that write.
local function wbq_key(wb)
  return string.sub(wb, 1, -3) .. 'wbq'
end

-- The value after name in a flat {name, value, ...} reply (XINFO).
local function field(t, name)
  for i = 1, #t - 1, 2 do
    if t[i] == name then return t[i + 1] end
  end
  return nil
end

-- The consumer group g of stream wb as XINFO GROUPS shows it, or nil.
local function find_group(wb, g)
  if redis.call('EXISTS', wb) == 0 then return nil end
  for _, grp in ipairs(redis.call('XINFO', 'GROUPS', wb)) do
    if field(grp, 'name') == g then return grp end
  end
  return nil
end

-- Stream ids "ms-seq" compared as numbers (both parts stay below 2^53).
local function id_parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function id_lt(a, b)
  local am, as = id_parts(a)
  local bm, bs = id_parts(b)
  return am < bm or (am == bm and as < bs)
end

-- The consumer group of the queue (SC__WB_GROUP in remote/remote.h).
local WB_GROUP = 'synccache'

-- {ns}:wbq keeps the field '' from the first queued write on (no value key
-- is empty), so it is never emptied away. Without it beside a queue, Redis
-- lost it (an allkeys-* maxmemory-policy evicts any key): a fetch would load
-- keys whose queued writes the store does not hold yet. It is made again
-- from the queue: each key's newest entry, if not acknowledged (pending, or
-- not yet delivered to the group). Once per loss, reading the whole queue.
local function wbq_restore(wb)
  local wbq = wbq_key(wb)
  if redis.call('HEXISTS', wbq, '') == 1 or redis.call('EXISTS', wb) == 0 then return end
  local grp = find_group(wb, WB_GROUP)
  local delivered = grp and field(grp, 'last-delivered-id') or '0-0'
  local pending = {}
  if grp then
    local n = redis.call('XPENDING', wb, WB_GROUP)[1]
    if n > 0 then
      for _, p in ipairs(redis.call('XPENDING', wb, WB_GROUP, '-', '+', n)) do pending[p[1]] = true end
    end
  end
  local newest = {}
  for _, e in ipairs(redis.call('XRANGE', wb, '-', '+')) do
    local k = field(e[2], 'k')
    if k then newest[k] = e[1] end
  end
  local prefix = string.sub(wb, 1, -3) .. 'k:'
  local fv = {'', '1'}
  for k, id in pairs(newest) do
    if pending[id] or id_lt(delivered, id) then
      fv[#fv + 1] = prefix .. k
      fv[#fv + 1] = id
    end
    if #fv >= 1000 then
      redis.call('HSET', wbq, unpack(fv))
      fv = {}
    end
  end
  if #fv > 0 then redis.call('HSET', wbq, unpack(fv)) end
end

-- Appends one write to the queue: k = the key, v = its version, x = the
-- value (absent for a delete), and notes it in {ns}:wbq under the key's
-- value key vk. The id is Redis' own ('*'), so it always grows even if the
-- counter was ever seeded again.
local function queue(wb, key, vs, value, vk)
  wbq_restore(wb)
  local id
  if value then
    id = redis.call('XADD', wb, '*', 'k', key, 'v', vs, 'x', value)
  else
    id = redis.call('XADD', wb, '*', 'k', key, 'v', vs)
  end
  redis.call('HSET', wbq_key(wb), vk, id, '', '1')
end

-- Replaces the fields of the hash at key with fv (a flat {field, value,
-- ...} list) and gives it the TTL ttl (ms; nil or '0': none, so the old
-- one is dropped), without the key being absent in between:
-- on a Redis Cluster node whose slot is migrating, a command on a key the
-- node does not hold (a DEL just removed it) is answered ASK, which stops a
-- script half-way with its writes so far kept (a DEL then an HSET lost the
-- key's value, its version already taken and no event out). So the new
-- fields are written first and the others removed after them.
local function replace_hash(key, fv, ttl)
  redis.call('HSET', key, unpack(fv))
  local keep, stale = {}, {}
  for i = 1, #fv, 2 do keep[fv[i]] = true end
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if not keep[f] then stale[#stale + 1] = f end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  if ttl and ttl ~= '0' then
    redis.call('PEXPIRE', key, ttl)
  else
    redis.call('PERSIST', key)
  end
end

-- Stores a value at version vs with its TTL ('0': none). A write revokes any
-- load lock (a load begun before it must not store afterwards) and ends a
-- tag or a not-found marker: the hash is replaced whole (replace_hash),
-- which drops those fields (lock, lock_until, lock_seq, outdated, empty,
-- fresh_until, tags) and the old TTL.
local function store_value(key, vs, value, ttl, tags)
  if tags and tags ~= '' then
    replace_hash(key, {'value', value, 'version', vs, 'tags', tags}, ttl)
  else
    replace_hash(key, {'value', value, 'version', vs}, ttl)
  end
end

-- Deletes a key at version vs; with a tombstone TTL ('0': none) the key keeps
-- its version (a hash with no value) that long, so a version read before the
-- delete never matches again.
local function delete_value(key, vs, tombstone_ttl)
  if tombstone_ttl ~= '0' then
    replace_hash(key, {'version', vs}, tombstone_ttl)
  else
    redis.call('DEL', key)
  end
end

-- Tags (sc_set_tagged, sc_invalidate_tag). A key's hash lists its tags in
-- the field tags ("\n" between them); {ns}:tags maps each invalidated tag
-- to the version its sc_invalidate_tag took. A key whose version is below
-- the invalidation version of one of its tags was written before that
-- invalidation: it is absent. The namespace's tag hash {ns}:tags is named
-- from its meta key {ns}:meta (same slot), which every reading script has.
local function tags_key(meta)
  return string.sub(meta, 1, -5) .. 'tags'
end

-- The tag hash can be lost while the values it makes absent stay (a
-- maxmemory-policy allkeys-* evicts any key). {ns}:meta field 'tags' keeps
-- the highest invalidation version: a tag hash missing while it is set was
-- lost, and one made again after the loss (tag_invalidate.lua) keeps that
-- version in its field '' (no tag is empty). A tagged key below it may have
-- been invalidated by a tag Redis forgot: absent. 0 when nothing was lost.
local function tags_lost(tk, meta)
  if redis.call('EXISTS', tk) == 0 then
    return tonumber(redis.call('HGET', meta, 'tags') or '0') or 0
  end
  return tonumber(redis.call('HGET', tk, '') or '0') or 0
end

-- The highest invalidation version since the last clear ({ns}:meta field
-- 'tags'; 0: none), which no entry of the tag hash exceeds. A key at or
-- above it cannot be dead by a tag, and the tag hash is then not read: it is
-- a key the scripts do not declare, and a Redis Cluster node migrating the
-- slot answers ASK for one it does not hold (none was ever made), which
-- fails the script.
local function tags_top(meta)
  return tonumber(redis.call('HGET', meta, 'tags') or '0') or 0
end

local function tag_dead(ver, tags, meta)
  if not tags or tags == '' or not ver or tags_top(meta) <= ver then return false end
  local tk = tags_key(meta)
  for t in string.gmatch(tags, '[^\n]+') do
    local iv = tonumber(redis.call('HGET', tk, t) or '0') or 0
    if iv > ver then return true end
  end
  return tags_lost(tk, meta) > ver
end

-- The number compare-and-set compares: the key's version (a tombstone's
-- too), never below the namespace's clear floor nor below the invalidation
-- version of a tag the key lists that was invalidated after its write (the
-- key is absent since then, as after a delete); 0 only for a key with no
-- remembered history. It changes on every write, delete, tag and clear.
local function key_version(key, meta)
  local h = redis.call('HMGET', key, 'version', 'tags')
  local v = tonumber(h[1] or '0') or 0
  if h[2] and h[2] ~= '' and tags_top(meta) > v then
    local tk = tags_key(meta)
    for t in string.gmatch(h[2], '[^\n]+') do
      local iv = tonumber(redis.call('HGET', tk, t) or '0') or 0
      if iv > v then v = iv end
    end
    local lost = tags_lost(tk, meta)
    if lost > v then v = lost end
  end
  local floor = floor_of(meta)
  if floor > v then return floor end
  return v
end
