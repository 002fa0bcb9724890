-- resync.lua: lower the bucket's levels to what the provider's x-ratelimit-remaining-* headers
-- say is left. Headers never raise a level: the bucket's own accounting is the upper bound,
-- and a header may be stale by the time it arrives.
--
-- KEYS[1]  bucket hash (BucketKeys.bucket), fields req, tok, ts as in acquire.lua
--
-- ARGV[1]  rpm                 requests per minute, 0 = no request cap
-- ARGV[2]  tpm                 tokens per minute, 0 = no token cap
-- ARGV[3]  burst_seconds       as in acquire.lua
-- ARGV[4]  max_call_tokens     as in acquire.lua
-- ARGV[5]  remaining_requests  x-ratelimit-remaining-requests, '' when the header was absent
-- ARGV[6]  remaining_tokens    x-ratelimit-remaining-tokens, '' when the header was absent
--
-- Returns {request level, token level} after the call, rounded down to integers.
--
-- The provider's remaining counts against a whole minute while the bucket holds about a second,
-- so a remaining at or above the capacity says nothing; below it, it caps the level.

local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local max_call = tonumber(ARGV[4])
local remaining_req = tonumber(ARGV[5])
local remaining_tok = tonumber(ARGV[6])

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

if rpm > 0 and remaining_req and remaining_req < req_cap then
  req = math.min(req, remaining_req)
end
if tpm > 0 and remaining_tok and remaining_tok < tok_cap then
  tok = math.min(tok, remaining_tok)
end

redis.call('HSET', KEYS[1], 'req', string.format('%.17g', req), 'tok', string.format('%.17g', tok),
  'ts', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], 3600000)
return {math.floor(req), math.floor(tok)}
