-- pause.lua: stop the whole fleet from calling an account until server now + pause_ms
-- (a 429's retry-after, capped by the caller). An existing longer pause is never shortened.
--
-- KEYS[1]  pause key (BucketKeys.pause): server time (µs) before which acquire.lua admits nothing
-- KEYS[2]  the calling run's counters hash (RunKeys.counters), optional. Fields written:
--            paused_ms       HINCRBY by how much this call lengthened the account's pause
--            pause_until_ms  server time (ms) the pause now ends
--            pause_asked_ms  what the endpoint asked for, before the cap
--
-- ARGV[1]  pause_ms  milliseconds from the server's now (> 0)
-- ARGV[2]  asked_ms  the retry-after the endpoint asked for (with KEYS[2])
--
-- Returns {pause-until in µs of server time, the run's paused_ms (0 without KEYS[2])}.

local pause_us = math.ceil(tonumber(ARGV[1]) * 1000)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local wanted = now + pause_us

local current = tonumber(redis.call('GET', KEYS[1]) or '')
local until_us = wanted
if current and current >= wanted then
  until_us = current
else
  -- The key expires when the pause ends, so a stale pause never outlives its meaning.
  redis.call('SET', KEYS[1], string.format('%d', wanted), 'PX', math.max(math.ceil(pause_us / 1000), 1))
end
local paused = 0
if KEYS[2] then
  local lengthened = math.max(until_us - math.max(current or now, now), 0)
  paused = redis.call('HINCRBY', KEYS[2], 'paused_ms', math.floor(lengthened / 1000))
  redis.call('HSET', KEYS[2], 'pause_until_ms', string.format('%d', math.floor(until_us / 1000)),
    'pause_asked_ms', string.format('%d', math.ceil(tonumber(ARGV[2]))))
end
return {until_us, paused}
