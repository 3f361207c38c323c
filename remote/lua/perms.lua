#!lua flags=no-writes
-- sc_open's check, for a pod that writes Redis, that its user may run every
-- command the writing scripts run (set, delete, clear, tags, loads,
-- write-behind). A script's writes before an error stay, so a command the
-- ACL refuses after a script's first write (INCR of the counter) would
-- leave that write half done: the version taken, the value replaced or
-- deleted, no log entry, no event. SCAN too: sc_clear collects the keys it
-- made absent with SCAN and a script, and without it would collect nothing,
-- silently. PUBLISH is not checked here (the heartbeat at sc_open proves
-- it, and the scripts run it last, under pcall).
-- redis.acl_check_cmd: Redis >= 7 (older servers skip the check).
-- KEYS: meta, the one key declared (on a Redis Cluster node whose slot is
--   migrating, several declared keys not all on the node get TRYAGAIN; the
--   check reads no key, the others only name commands' keys)
-- ARGV: the value key prefix {ns}:k:, seq, log, and '1' when the pod saves
--   write-behind entries (save_fn), else '0'
-- Returns 1, or a NOPERM error naming the command and the key.
if not redis.acl_check_cmd then return 1 end
local meta, vk, seq, log = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local base = string.sub(meta, 1, -5)
local tags, wb, wbq = base .. 'tags', base .. 'wb', base .. 'wbq'
-- {the key named in the message, the command and its arguments}
local checks = {
  {'', 'TIME'}, {'', 'SCAN', '0', 'MATCH', vk .. '*'},
  {vk, 'TYPE', vk}, {vk, 'EXISTS', vk}, {vk, 'DEL', vk}, {vk, 'UNLINK', vk}, {vk, 'HSET', vk, 'f', 'v'},
  {vk, 'HDEL', vk, 'f'}, {vk, 'HGET', vk, 'f'}, {vk, 'HMGET', vk, 'f'}, {vk, 'HEXISTS', vk, 'f'},
  {vk, 'HKEYS', vk}, {vk, 'PERSIST', vk}, {vk, 'PEXPIRE', vk, '1'}, {vk, 'PTTL', vk},
  {seq, 'GET', seq}, {seq, 'SET', seq, '1'}, {seq, 'INCR', seq}, {seq, 'DECR', seq},
  {meta, 'TYPE', meta}, {meta, 'HGET', meta, 'f'}, {meta, 'HMGET', meta, 'f'}, {meta, 'HSET', meta, 'f', 'v'},
  {meta, 'HSETNX', meta, 'f', 'v'}, {meta, 'HEXISTS', meta, 'f'},
  {log, 'TYPE', log}, {log, 'XADD', log, 'MAXLEN', '~', '1', '1-0', 'e', 'x'}, {log, 'XRANGE', log, '-', '+'},
  {log, 'XREVRANGE', log, '+', '-'},
  {tags, 'TYPE', tags}, {tags, 'HGET', tags, 'f'}, {tags, 'HSET', tags, 'f', 'v'}, {tags, 'UNLINK', tags},
  {wb, 'TYPE', wb}, {wb, 'EXISTS', wb}, {wb, 'XADD', wb, '*', 'k', 'x'}, {wb, 'XINFO', 'GROUPS', wb},
  {wbq, 'HGET', wbq, 'f'}, {wbq, 'HSET', wbq, 'f', 'v'}, {wbq, 'HDEL', wbq, 'f'}, {wbq, 'HEXISTS', wbq, 'f'},
  -- (an index Redis lost is made again from the queue: wbq_restore)
  {wb, 'XPENDING', wb, 'g'}, {wb, 'XRANGE', wb, '-', '+'},
}
if ARGV[4] == '1' then
  local saver = {
    {wb, 'XGROUP', 'CREATE', wb, 'g', '0'}, {wb, 'XGROUP', 'DELCONSUMER', wb, 'g', 'c'},
    {wb, 'XREADGROUP', 'GROUP', 'g', 'c', 'STREAMS', wb, '>'}, {wb, 'XAUTOCLAIM', wb, 'g', 'c', '0', '0'},
    {wb, 'XCLAIM', wb, 'g', 'c', '0', '0-1'}, {wb, 'XACK', wb, 'g', '0-1'}, {wb, 'XPENDING', wb, 'g'},
    {wb, 'XTRIM', wb, 'MINID', '0'}, {wb, 'XRANGE', wb, '-', '+'}, {wb, 'XINFO', 'STREAM', wb},
    {wb, 'XINFO', 'CONSUMERS', wb, 'g'},
  }
  for _, c in ipairs(saver) do checks[#checks + 1] = c end
end
for _, c in ipairs(checks) do
  if not redis.acl_check_cmd(unpack(c, 2)) then
    local cmd = string.lower(c[2])
    if c[2] == 'XGROUP' or c[2] == 'XINFO' then cmd = cmd .. '|' .. string.lower(c[3]) end
    return redis.error_reply('NOPERM this user has no permissions to run the \'' .. cmd .. '\' command' ..
      (c[1] ~= '' and (' on ' .. c[1]) or '') .. ', which synccache needs to write this namespace')
  end
end
return 1
