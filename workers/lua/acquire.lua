-- acquire.lua: take one call's cost from an account's shared token bucket, or say how long to wait.
--
-- KEYS[1]  bucket hash (BucketKeys.bucket). Fields:
--            req  request level (float as a string; negative = debt the refill repays)
--            tok  token level   (float as a string; negative = debt from reconcile)
--            ts   server time (µs) the levels were last brought up to date
-- KEYS[2]  pause key (BucketKeys.pause): server time (µs) before which nothing is admitted
--
-- ARGV[1]  rpm              requests per minute, 0 = no request cap
-- ARGV[2]  tpm              tokens per minute, 0 = no token cap
-- ARGV[3]  burst_seconds    seconds of the cap the bucket holds (capacity = cap × burst / 60)
-- ARGV[4]  cost_requests    requests this call takes (usually 1)
-- ARGV[5]  cost_tokens      tokens this call takes at admission (prompt + max_tokens)
-- ARGV[6]  max_call_tokens  the largest single call the caller allows (e.g. the configured
--                           max context); the token capacity is at least this, so that one big
--                           call still fits at a small TPM
--
-- Returns {status, wait_ms}:
--    1, 0        admitted: both costs deducted
--    0, wait_ms  not admitted, nothing deducted: retry in at least wait_ms (>= 1)
--   -1, 0        the cost exceeds a capacity and can never be admitted
--
-- The clock is the server's (TIME), never a client's: pods' clocks drift, the bucket must not.
-- A missing bucket starts full; it holds about one second of the cap, so that burst is one the
-- provider accepts (a whole minute up front would burst straight into 429s).

local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local cost_req = tonumber(ARGV[4])
local cost_tok = tonumber(ARGV[5])
local max_call = tonumber(ARGV[6])

local req_cap = math.max(rpm * burst / 60, 1)
local tok_cap = math.max(tpm * burst / 60, max_call)
if (rpm > 0 and cost_req > req_cap) or (tpm > 0 and cost_tok > tok_cap) then
  return {-1, 0}
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local state = redis.call('HMGET', KEYS[1], 'req', 'tok', 'ts')
local req = tonumber(state[1]) or req_cap
local tok = tonumber(state[2]) or tok_cap
-- A clock that went backwards (failover) refills nothing rather than draining the bucket.
local elapsed = math.max(now - (tonumber(state[3]) or now), 0)
-- Rates in units per µs.
local req_rate = rpm / 60e6
local tok_rate = tpm / 60e6
req = math.min(req + elapsed * req_rate, req_cap)
tok = math.min(tok + elapsed * tok_rate, tok_cap)

local status, wait_us = 1, 0
local paused_until = tonumber(redis.call('GET', KEYS[2]) or '')
if paused_until and paused_until > now then
  status, wait_us = 0, paused_until - now
else
  if rpm > 0 and req < cost_req then
    status, wait_us = 0, math.max(wait_us, (cost_req - req) / req_rate)
  end
  if tpm > 0 and tok < cost_tok then
    status, wait_us = 0, math.max(wait_us, (cost_tok - tok) / tok_rate)
  end
end
if status == 1 then
  -- Both or neither: only an admitted call is charged, on both buckets at once.
  if rpm > 0 then req = req - cost_req end
  if tpm > 0 then tok = tok - cost_tok end
end

-- Written on a refusal too, so that ts always follows the server clock.
redis.call('HSET', KEYS[1], 'req', string.format('%.17g', req), 'tok', string.format('%.17g', tok),
  'ts', string.format('%d', now))
-- Idle buckets disappear; an hour is far longer than any wait.
redis.call('PEXPIRE', KEYS[1], 3600000)
return {status, math.max(math.ceil(wait_us / 1000), status == 1 and 0 or 1)}
