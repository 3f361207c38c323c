#!lua flags=allow-oom
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
-- ARGV: group, consumer, count, min_idle_ms, claim cursor, mine ('1' | '0'),
--       max_bytes ('0': no bound; a batch stops growing once its entries
--       reach this many bytes, and always holds at least one entry)
-- Returns {source ('mine' | 'claimed' | 'new'), next claim cursor, entries}
-- with entries = {{id, {field, value, ...} | false (trimmed)}, ...}.
local bad = check_stream(KEYS[1])
if bad then return bad end
local g, c = ARGV[1], ARGV[2]
local count = tonumber(ARGV[3])
local budget = tonumber(ARGV[7] or '0') or 0
if not find_group(KEYS[1], g) then
  redis.call('XGROUP', 'CREATE', KEYS[1], g, '0', 'MKSTREAM')
end
local function size(e)
  local s = #e[1]
  if type(e[2]) == 'table' then
    for _, f in ipairs(e[2]) do s = s + #f end
  end
  return s
end
local function full(list, bytes)
  return #list >= count or (budget > 0 and bytes >= budget)
end
-- One entry at a time, so that a batch of large values stays within the
-- byte budget: XREADGROUP delivers (and makes pending) all it returns.
local function read(from)
  local out, bytes = {}, 0
  while not full(out, bytes) do
    local r = redis.call('XREADGROUP', 'GROUP', g, c, 'COUNT', 1, 'STREAMS', KEYS[1], from)
    if not r or not r[1] or not r[1][2][1] then break end
    local e = r[1][2][1]
    out[#out + 1] = e
    bytes = bytes + size(e)
    if from ~= '>' then from = e[1] end
  end
  return out
end
if ARGV[6] == '1' then
  local mine = read('0')
  if #mine > 0 then return {'mine', ARGV[5], mine} end
end
local claimed, bytes, cur = {}, 0, ARGV[5]
for _ = 1, count do
  local a = redis.call('XAUTOCLAIM', KEYS[1], g, c, ARGV[4], cur, 'COUNT', 1)
  cur = a[1]
  for _, e in ipairs(a[2]) do
    if type(e) == 'table' then
      claimed[#claimed + 1] = e
      bytes = bytes + size(e)
    end
  end
  if full(claimed, bytes) or cur == '0-0' then break end
end
if #claimed > 0 then
  local idle = tonumber(ARGV[4])
  for _, info in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], g)) do
    local name = field(info, 'name')
    if name ~= c and field(info, 'pending') == 0 and field(info, 'idle') >= idle then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], g, name)
    end
  end
  return {'claimed', cur, claimed}
end
return {'new', cur, read('>')}
