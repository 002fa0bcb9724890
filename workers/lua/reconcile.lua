-- reconcile.lua: after a call, settle the difference between the tokens reserved at admission
-- and the tokens the caller decides the call really cost.
--
-- KEYS[1]  bucket hash (BucketKeys.bucket), fields req, tok, ts as in acquire.lua
--
-- ARGV[1]  reserved_tokens  what acquire.lua deducted for the call
-- ARGV[2]  actual_tokens    what the call cost; the caller never passes less than the provider
--                           counted at admission (prompt + max_tokens), so refunds happen only
--                           where the provider also refunds
-- ARGV[3]  tpm              tokens per minute (> 0; the caller skips reconcile without a cap)
-- ARGV[4]  burst_seconds    as in acquire.lua
-- ARGV[5]  max_call_tokens  as in acquire.lua
-- ARGV[6]  rpm              requests per minute, 0 = no request cap: needed because both levels
--                           share one ts, so the request level must be refilled up to now too
--
-- Returns the new token level, rounded down to an integer (for logs and tests).
--
-- Both levels are refilled to the server's now first, so a refund is capped at the capacity
-- the bucket would really hold, and extra usage comes off a level that is up to date. The token
-- level may go negative (debt); the refill repays it before anything else is admitted.

local delta = tonumber(ARGV[1]) - tonumber(ARGV[2])
local tpm = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local max_call = tonumber(ARGV[5])
local rpm = tonumber(ARGV[6])

local req_cap = math.max(rpm * burst / 60, 1)
local tok_cap = math.max(tpm * burst / 60, max_call)

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local state = redis.call('HMGET', KEYS[1], 'req', 'tok', 'ts')
local req = tonumber(state[1]) or req_cap
local tok = tonumber(state[2]) or tok_cap
local elapsed = math.max(now - (tonumber(state[3]) or now), 0)
req = math.min(req + elapsed * rpm / 60e6, req_cap)
tok = math.min(tok + elapsed * tpm / 60e6, tok_cap)

tok = math.min(tok + delta, tok_cap)

redis.call('HSET', KEYS[1], 'req', string.format('%.17g', req), 'tok', string.format('%.17g', tok),
  'ts', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], 3600000)
return math.floor(tok)
