#!lua flags=no-writes
-- The state of the write-behind queue: what sc_flush_behind waits on and
-- what the behind_* stats show. A write is unsaved while its entry is not
-- yet delivered to the group or delivered and still pending.
-- KEYS: wb
-- ARGV: group
-- Returns {last id queued, last id delivered ('0-0': none), group exists
-- (1 | 0), pending count, oldest pending id | '', oldest unsaved id | '',
-- unsaved count, Redis time in ms}.
local now = now_ms()
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'0-0', '0-0', 0, 0, '', '', 0, now}
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last = field(info, 'last-generated-id')
local len = field(info, 'length')
local grp = find_group(KEYS[1], ARGV[1])
if not grp then
  local first = field(info, 'first-entry')
  return {last, '0-0', 0, 0, '', first and first[1] or '', len, now}
end
local delivered = field(grp, 'last-delivered-id')
local p = redis.call('XPENDING', KEYS[1], ARGV[1])
local pmin = ''
if p[1] > 0 then pmin = p[2] end
local oldest = pmin
local nxt = redis.call('XRANGE', KEYS[1], '(' .. delivered, '+', 'COUNT', 1)
if nxt[1] and (oldest == '' or id_lt(nxt[1][1], oldest)) then oldest = nxt[1][1] end
local lag = field(grp, 'lag')
local unsaved = len
if type(lag) == 'number' then unsaved = p[1] + lag end
return {last, delivered, 1, p[1], pmin, oldest, unsaved, now}
