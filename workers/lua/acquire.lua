-- acquire.lua: admit one call into an account's shared bucket, or say how long to wait.
--
-- KEYS[1]  bucket hash (BucketKeys.bucket). Fields:
--            req  request level (float as a string; negative = debt the refill repays)
--            tok  token level   (float as a string; negative = debt)
--            ts   server time (µs) the levels were last brought up to date
--            creq running total of requests charged (integer; settle.lua reads it)
--            ctok running total of tokens charged, net of settle.lua's refunds (integer)
-- KEYS[2]  pause key (BucketKeys.pause): server time (µs) before which nothing is admitted
--
-- ARGV[1]  rpm            requests per minute, 0 = no request cap
-- ARGV[2]  tpm            tokens per minute, 0 = no token cap
-- ARGV[3]  burst_seconds  seconds of each cap the bucket holds (capacity = cap × burst / 60)
-- ARGV[4]  cost_requests  requests this call takes (usually 1)
-- ARGV[5]  cost_tokens    tokens this call takes at admission (prompt + max_tokens)
--
-- Returns {status, wait_ms, now_us, creq, ctok}:
--    1, 0, now, creq, ctok  admitted at server time now (µs): both costs deducted at once;
--                           creq/ctok are the running totals just after this charge (0 when
--                           no cap), which the call hands back to settle.lua with its headers
--    0, wait_ms, now        not admitted, nothing deducted: retry in wait_ms (>= 1)
--   -1, 0, 0                a cost exceeds its per-minute cap: the provider refuses it outright
--
-- The clock is the server's (TIME), never a client's: pods' clocks drift, the bucket must not.
-- A missing bucket starts full. It holds about a second of each cap and refills continuously,
-- as the provider enforces its per-minute caps (a whole minute up front bursts into 429s).
-- A call costing more than a bucket holds is admitted once that bucket is full and leaves it
-- in debt, as the provider does: so any call within the per-minute cap eventually fits.

local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local cost_req = tonumber(ARGV[4])
local cost_tok = tonumber(ARGV[5])

if (rpm > 0 and cost_req > rpm) or (tpm > 0 and cost_tok > tpm) then
  return {-1, 0, 0}
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local paused_until = tonumber(redis.call('GET', KEYS[2]) or '')
if paused_until and paused_until > now then
  return {0, math.max(math.ceil((paused_until - now) / 1000), 1), now}
end
if rpm == 0 and tpm == 0 then
  return {1, 0, now, 0, 0}
end

local req_cap = rpm * burst / 60
local tok_cap = tpm * burst / 60
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

local wait_us = 0
if rpm > 0 then
  local need = math.min(cost_req, req_cap)
  if req < need then wait_us = math.max(wait_us, (need - req) / req_rate) end
end
if tpm > 0 then
  local need = math.min(cost_tok, tok_cap)
  if tok < need then wait_us = math.max(wait_us, (need - tok) / tok_rate) end
end
local status = 0
if wait_us == 0 then
  -- Both or neither: only an admitted call is charged, on both buckets at once.
  status = 1
  if rpm > 0 then req = req - cost_req end
  if tpm > 0 then tok = tok - cost_tok end
end

-- Written on a refusal too, so that ts always follows the server clock.
redis.call('HSET', KEYS[1], 'req', string.format('%.17g', req), 'tok', string.format('%.17g', tok),
  'ts', string.format('%d', now))
-- Idle buckets disappear; an hour is far longer than any wait.
redis.call('PEXPIRE', KEYS[1], 3600000)
if status == 1 then
  local creq = rpm > 0 and redis.call('HINCRBY', KEYS[1], 'creq', cost_req) or 0
  local ctok = tpm > 0 and redis.call('HINCRBY', KEYS[1], 'ctok', cost_tok) or 0
  return {1, 0, now, creq, ctok}
end
return {0, math.max(math.ceil(wait_us / 1000), 1), now}
