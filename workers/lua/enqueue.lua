-- Hold prompt tokens against the fleet's enqueued-token limit (OpenAI's batch queue limit),
-- or give them back.
--
-- KEYS[1]  prelabel:batch-enqueued:{base_url}:{model}  string  prompt tokens the fleet has
--          waiting in batches for that model
-- ARGV[1]  tokens to add (negative: give back, when a batch is final)
-- ARGV[2]  the limit (0: none)
-- ARGV[3]  "check" to refuse an addition that would pass the limit, "force" to add anyway
--          (a batch that exists already holds its tokens at the API, whatever the count says)
--
-- Returns the new count, or -1 when refused (nothing added). A count given back below zero
-- (a release without its hold, after a flush) stops at zero; at zero the key is deleted.
local add = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local held = tonumber(redis.call('GET', KEYS[1]) or '0')
if add > 0 and ARGV[3] == 'check' and limit > 0 and held + add > limit then
  return -1
end
local now = held + add
if now <= 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('SET', KEYS[1], now)
return now
