-- settle.lua: after a call, settle its tokens (reconcile) and correct the levels from the
-- provider's rate-limit headers (resync), in one round trip.
--
-- KEYS[1]  bucket hash (BucketKeys.bucket), fields req, tok, ts, creq, ctok as in acquire.lua
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
-- ARGV[10] admitted_us        server time acquire.lua admitted the call at, '' when unknown
-- ARGV[11] charged_requests   acquire.lua's creq for the call, '' when unknown
-- ARGV[12] charged_tokens     acquire.lua's ctok for the call, '' when unknown
--
-- Returns {request level, token level} after the call, rounded down to integers.
--
-- Both levels are first refilled to the server's now, so a refund is capped at what the bucket
-- can hold and extra usage comes off an up-to-date level (the level may go negative: debt).
-- A refund or extra charge also moves the running total ctok, as acquire.lua's charges do.
-- Headers only ever lower a level: the bucket's own accounting is the upper bound.
--   * remaining below the capacity: the provider has less than one bucket left, so has the fleet.
--   * deficit: what the provider still has to refill does not depend on how much it holds, so
--     the fleet's deficit (capacity - level) must be at least as large. This is what notices
--     traffic on the same account from outside the fleet.
--
-- Issue 21: the headers describe the provider's bucket when it admitted the call, one latency
-- before they arrive here (the hosted API's `remaining` is as of admission). Since then the
-- provider has refilled `age × rate`, and has charged the calls the fleet admitted after this
-- one (most still in flight). The fleet's level already holds both. Comparing the header with
-- it as-is threw the refill away, as if the calls since admission were charged a second time:
-- each answer cut up to `latency × rate` from the level. Whenever the provider's bucket touched
-- full between calls (calls large against a second of the cap, or a fleet that idles), every
-- answer cut again: 0.72 of a 60,000 TPM cap with max_tokens 512 and 300 ms latency, against
-- 0.99 with the headers stripped (benchmarks/bench_caps.py, tokens-bound-60k).
-- So the header is first brought to now, on the server's clock: the provider's deficit now is
-- at least `deficit - age × rate + charged since`, and its level at most
-- `remaining + age × rate - charged since` (refill stops at full, so these bounds never make
-- the fleet see less room than the provider has). `charged since` is the running total now
-- minus the call's own (ctok - ARGV[12]): absolute totals, not a difference of levels, so a
-- gap that several answers in flight all report (outside traffic) is taken off once, not once
-- per answer. The age is counted from the fleet's admission, a few ms before the provider's:
-- the error is a few ms of refill in the fleet's favour.
-- Why both terms, for the hosted API: its `remaining` counts against the whole minute (limit
-- 160000, remaining 159976, reset 9ms after one small call), so the remaining rule never
-- fires there and `reset` (the deficit) is what resyncs; ageing alone would let the deficit
-- of outside traffic hide behind the fleet's own calls in flight (up to latency × rate, more
-- than the 0.2 s of cap between the fleet's bucket and the provider's: 429s), and trusting the
-- headers only for a lower limit would not see outside traffic at all.
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local delta = tonumber(ARGV[4]) - tonumber(ARGV[5])
local remaining_req = tonumber(ARGV[6])
local remaining_tok = tonumber(ARGV[7])
local deficit_req = tonumber(ARGV[8])
local deficit_tok = tonumber(ARGV[9])
local admitted = tonumber(ARGV[10])
local mark_req = tonumber(ARGV[11])
local mark_tok = tonumber(ARGV[12])

local req_cap = rpm * burst / 60
local tok_cap = tpm * burst / 60

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local state = redis.call('HMGET', KEYS[1], 'req', 'tok', 'ts', 'creq', 'ctok')
local req = tonumber(state[1]) or req_cap
local tok = tonumber(state[2]) or tok_cap
local elapsed = math.max(now - (tonumber(state[3]) or now), 0)
req = math.min(req + elapsed * rpm / 60e6, req_cap)
tok = math.min(tok + elapsed * tpm / 60e6, tok_cap)

-- What the provider has refilled and charged since it admitted the call (see above); nothing
-- when the call's admission is unknown (the headers are then taken as they are).
local age = admitted and math.max(now - admitted, 0) or 0
local since_req = mark_req and math.max((tonumber(state[4]) or 0) - mark_req, 0) or 0
local since_tok = mark_tok and math.max((tonumber(state[5]) or 0) - mark_tok, 0) or 0
local moved_req = age * rpm / 60e6 - since_req
local moved_tok = age * tpm / 60e6 - since_tok

if tpm > 0 then
  tok = math.min(tok + delta, tok_cap)
  if delta ~= 0 then redis.call('HINCRBY', KEYS[1], 'ctok', -delta) end
end

if rpm > 0 then
  if remaining_req and remaining_req < req_cap then
    req = math.min(req, remaining_req + moved_req)
  end
  if deficit_req then req = math.min(req, req_cap - (deficit_req - moved_req)) end
end
if tpm > 0 then
  if remaining_tok and remaining_tok < tok_cap then
    tok = math.min(tok, remaining_tok + moved_tok)
  end
  if deficit_tok then tok = math.min(tok, tok_cap - (deficit_tok - moved_tok)) end
end

redis.call('HSET', KEYS[1], 'req', string.format('%.17g', req), 'tok', string.format('%.17g', tok),
  'ts', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], 3600000)
return {math.floor(req), math.floor(tok)}
