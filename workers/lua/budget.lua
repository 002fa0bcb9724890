-- Reserve part of a run's budget for one call, or settle a call's reservation.
--
-- KEYS[1]  prelabel:run:{run}:budget  hash  tokens, musd: reserved-or-spent so far
-- ARGV[1]  tokens to add (negative to give back)
-- ARGV[2]  micro-dollars to add (negative to give back)
-- ARGV[3]  token budget (0: none)
-- ARGV[4]  micro-dollar budget (0: none)
-- ARGV[5]  "reserve" or "settle"
--
-- A reservation is admitted only if it keeps both totals within their budgets; it adds
-- both or neither, so concurrent calls across the fleet can never overshoot together.
-- Settling always applies (the money is spent). Returns 1 when applied, 0 when refused.
local tokens = tonumber(ARGV[1])
local musd = tonumber(ARGV[2])
if ARGV[5] == 'reserve' then
  local spent_tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or '0')
  local spent_musd = tonumber(redis.call('HGET', KEYS[1], 'musd') or '0')
  local max_tokens = tonumber(ARGV[3])
  local max_musd = tonumber(ARGV[4])
  if max_tokens > 0 and spent_tokens + tokens > max_tokens then
    return 0
  end
  if max_musd > 0 and spent_musd + musd > max_musd then
    return 0
  end
end
redis.call('HINCRBY', KEYS[1], 'tokens', tokens)
redis.call('HINCRBY', KEYS[1], 'musd', musd)
return 1
