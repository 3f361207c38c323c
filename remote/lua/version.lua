#!lua flags=no-writes
-- The key's version for compare-and-set (see key_version in prelude.lua).
-- KEYS: value key, meta
-- Returns the version as a decimal string.
return string.format('%d', key_version(KEYS[1], KEYS[2]))
