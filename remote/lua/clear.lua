#!lua
-- Clears a namespace in one step: takes the version, makes it the namespace
-- floor (every key below it is absent from now on, whatever Redis still
-- holds), drops the tag hash, starts a new epoch and publishes. The keys
-- themselves are collected afterwards in batches (clear_batch.lua); a
-- clear that dies half-way has already taken effect for every reader and
-- every pod.
-- KEYS: seq, meta, log
-- ARGV: fmt, log_len, channel, p0, p1, p2, p3, seen (see take())
-- Returns {version, 1 | publish error text}.
-- Every tag invalidation is moot from here on: a key written before this
-- is below the floor, one written after is above every invalidation
-- version. So the tag hash goes, and grows only between clears (UNLINK:
-- a hash of many tags is freed off Redis' main thread, like the keys).
-- First, so that an ACL refusing UNLINK fails the clear before it writes.
-- There is a tag hash only when the meta names an invalidation (tags_top);
-- without one it is not touched: a Redis Cluster node migrating the slot
-- answers ASK for a key it does not hold, which fails the script.
local tk = tags_key(KEYS[2])
if redis.acl_check_cmd and not redis.acl_check_cmd('UNLINK', tk) then
  error({err = 'NOPERM this user has no permissions to run the \'unlink\' command on the tag hash ' .. tk})
end
if tags_top(KEYS[2]) > 0 then redis.call('UNLINK', tk) end
local v = take(KEYS[1], KEYS[2], KEYS[3], ARGV[#ARGV], ARGV[2])
local e = new_epoch(v)
local vs = string.format('%d', v)
redis.call('HSET', KEYS[2], 'floor', vs, 'epoch', e)
redis.call('HDEL', KEYS[2], 'tags')
return {vs, emit(ARGV[1], ARGV[4], ARGV[5], ARGV[6], ARGV[7], v, e, KEYS[3], ARGV[2], ARGV[3])}
