-- settle.lua: after a call, settle its tokens (reconcile) and correct the levels from the
-- provider's rate-limit headers (resync), in one round trip.
--
-- KEYS[1]  bucket hash (BucketKeys.bucket), fields req, tok, ts as in acquire.lua
--
-- ARGV[1]  rpm                requests per minute, 0 = no request cap
-- ARGV[2]  tpm                tokens per minute, 0 = no token cap
-- ARGV[3]  burst_seconds      as in acquire.lua
-- ARGV[4]  reserved_tokens    what acquire.lua deducted for the call
-- ARGV[5]  actual_tokens      what the call cost; the caller never passes less than the provider
--                             counted at admission (prompt + max_tokens), so a refund happens
--                             only where the provider also refunds
-- ARGV[6]  remaining_requests x-ratelimit-remaining-requests, '' when unknown
-- ARGV[7]  remaining_tokens   x-ratelimit-remaining-tokens, '' when unknown
-- ARGV[8]  deficit_requests   requests the provider still has to refill (from reset-requests),
--                             '' when unknown
-- ARGV[9]  deficit_tokens     tokens the provider still has to refill (from reset-tokens), ''
--
-- Returns {request level, token level} after the call, rounded down to integers.
--
-- Both levels are first refilled to the server's now, so a refund is capped at what the bucket
-- can hold and extra usage comes off an up-to-date level (the level may go negative: debt).
-- Headers only ever lower a level: the bucket's own accounting is the upper bound, and a header
-- may be stale by the time it arrives.
--   * remaining below the capacity: the provider has less than one bucket left, so has the fleet.
--   * deficit: what the provider still has to refill does not depend on how much it holds, so
--     the fleet's deficit (capacity - level) must be at least as large. This is what notices
--     traffic on the same account from outside the fleet.

local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local delta = tonumber(ARGV[4]) - tonumber(ARGV[5])
local remaining_req = tonumber(ARGV[6])
local remaining_tok = tonumber(ARGV[7])
local deficit_req = tonumber(ARGV[8])
local deficit_tok = tonumber(ARGV[9])

local req_cap = rpm * burst / 60
local tok_cap = tpm * burst / 60

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local state = redis.call('HMGET', KEYS[1], 'req', 'tok', 'ts')
local req = tonumber(state[1]) or req_cap
local tok = tonumber(state[2]) or tok_cap
local elapsed = math.max(now - (tonumber(state[3]) or now), 0)
req = math.min(req + elapsed * rpm / 60e6, req_cap)
tok = math.min(tok + elapsed * tpm / 60e6, tok_cap)

if tpm > 0 then
  tok = math.min(tok + delta, tok_cap)
end

if rpm > 0 then
  if remaining_req and remaining_req < req_cap then req = math.min(req, remaining_req) end
  if deficit_req then req = math.min(req, req_cap - deficit_req) end
end
if tpm > 0 then
  if remaining_tok and remaining_tok < tok_cap then tok = math.min(tok, remaining_tok) end
  if deficit_tok then tok = math.min(tok, tok_cap - deficit_tok) end
end

redis.call('HSET', KEYS[1], 'req', string.format('%.17g', req), 'tok', string.format('%.17g', tok),
  'ts', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], 3600000)
return {math.floor(req), math.floor(tok)}
