#!lua
-- Stores a value with a fresh version, its TTL, the log entry and the event,
-- in one atomic step (with the shebang, Redis refuses the whole script up
-- front when it is out of memory, so it never stops half-way for that).
-- KEYS: value key, seq, meta, log
-- ARGV: value, ttl_ms ('0': none), fmt ('m'|'j'), log_len, channel,
--       event template p0, p1, p2, p3, expected version ('': write anyway),
--       tags ("\n" between them; '': none, sc_set_tagged), seen (see take())
-- Returns {version, 1 | publish error text}, or {'conflict', current} when
-- an expected version was given and the key's version (version.lua) differs:
-- then nothing is written or published.
local bad = check_hash(KEYS[1])
if bad then return bad end
if ARGV[10] and ARGV[10] ~= '' then
  local cur = key_version(KEYS[1], KEYS[3])
  if cur ~= tonumber(ARGV[10]) then return {'conflict', string.format('%d', cur)} end
end
local v, e = take(KEYS[2], KEYS[3], KEYS[4], ARGV[#ARGV], ARGV[4])
local vs = string.format('%d', v)
store_value(KEYS[1], vs, ARGV[1], ARGV[2], ARGV[11])
return {vs, emit(ARGV[3], ARGV[6], ARGV[7], ARGV[8], ARGV[9], v, e, KEYS[4], ARGV[4], ARGV[5])}
