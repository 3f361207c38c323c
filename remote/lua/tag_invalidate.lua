#!lua
-- sc_invalidate_tag: every key written with the tag before this script ran
-- becomes absent, in one step and without touching the keys: the tag's
-- invalidation version (a fresh version of the namespace counter) goes into
-- {ns}:tags, and every read (get, get_many, fetch_lock) compares a key's
-- version with the invalidation versions of the tags its hash lists. A key
-- written later has a higher version and is unaffected. The event ("tag",
-- its key field holding the tag) takes the sequence number and the log entry
-- like any write, so a pod that lost it catches it up from the log.
-- KEYS: tags hash, seq, meta, log
-- ARGV: tag, fmt, log_len, channel, p0, p1, p2, p3, seen (see take())
-- Returns {version, 1 | publish error text}.
local ty = redis.call('TYPE', KEYS[1]).ok
if ty ~= 'none' and ty ~= 'hash' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' is a ' .. ty .. ', not the synccache tag hash')
end
local v, e = take(KEYS[2], KEYS[3], KEYS[4], ARGV[#ARGV], ARGV[3])
local vs = string.format('%d', v)
if ty == 'none' then
  -- A tag hash evicted since the last invalidation (prelude.lua,
  -- tags_lost): what it held stays forgotten, but not unaccounted for.
  local top = redis.call('HGET', KEYS[3], 'tags')
  if top then redis.call('HSET', KEYS[1], '', top) end
end
redis.call('HSET', KEYS[1], ARGV[1], vs)
redis.call('HSET', KEYS[3], 'tags', vs)
return {vs, emit(ARGV[2], ARGV[5], ARGV[6], ARGV[7], ARGV[8], v, e, KEYS[4], ARGV[3], ARGV[4])}
