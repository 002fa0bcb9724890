-- pause.lua: stop the whole fleet from calling an account until server now + pause_ms
-- (a 429's retry-after). An existing longer pause is never shortened.
--
-- KEYS[1]  pause key (BucketKeys.pause): server time (µs) before which acquire.lua admits nothing
--
-- ARGV[1]  pause_ms  milliseconds from the server's now (> 0)
--
-- Returns the pause-until in effect after the call, in µs of server time.

local pause_us = math.ceil(tonumber(ARGV[1]) * 1000)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local wanted = now + pause_us

local current = tonumber(redis.call('GET', KEYS[1]) or '')
if current and current >= wanted then
  return current
end
-- The key expires when the pause ends, so a stale pause never outlives its meaning.
redis.call('SET', KEYS[1], string.format('%d', wanted), 'PX', math.max(math.ceil(pause_us / 1000), 1))
return wanted
