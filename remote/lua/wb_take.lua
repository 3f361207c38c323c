#!lua
-- Takes the next batch of the write-behind queue for one consumer, in the
-- order that keeps the queue moving: the consumer's own unacknowledged
-- entries first when it asks for them (a save it retries), then entries that
-- another consumer took and left idle for min_idle_ms (a dead, hung or
-- closed pod: XAUTOCLAIM), then new ones. Creates the consumer group at the
-- start of the queue when it is missing, so writes queued while no pod
-- saved are not skipped. After a takeover, consumers left with nothing
-- pending and idle that long are removed (one that is alive is recreated by
-- its next read; nothing pending means nothing is lost).
-- KEYS: wb
-- ARGV: group, consumer, count, min_idle_ms, claim cursor, mine ('1' | '0')
-- Returns {source ('mine' | 'claimed' | 'new'), next claim cursor, entries}
-- with entries = {{id, {field, value, ...} | false (trimmed)}, ...}.
local bad = check_stream(KEYS[1])
if bad then return bad end
local g, c, n = ARGV[1], ARGV[2], ARGV[3]
if not find_group(KEYS[1], g) then
  redis.call('XGROUP', 'CREATE', KEYS[1], g, '0', 'MKSTREAM')
end
local function read(from)
  local r = redis.call('XREADGROUP', 'GROUP', g, c, 'COUNT', n, 'STREAMS', KEYS[1], from)
  if not r or not r[1] then return {} end
  return r[1][2]
end
if ARGV[6] == '1' then
  local mine = read('0')
  if #mine > 0 then return {'mine', ARGV[5], mine} end
end
local a = redis.call('XAUTOCLAIM', KEYS[1], g, c, ARGV[4], ARGV[5], 'COUNT', n)
if #a[2] > 0 then
  local idle = tonumber(ARGV[4])
  for _, info in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], g)) do
    local name = field(info, 'name')
    if name ~= c and field(info, 'pending') == 0 and field(info, 'idle') >= idle then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], g, name)
    end
  end
  return {'claimed', a[1], a[2]}
end
return {'new', a[1], read('>')}
