-- Commit one item's result, once.
--
-- KEYS[1]  prelabel:run:{run}:results   hash  item id -> ItemResult JSON
-- KEYS[2]  prelabel:run:{run}:counters  hash  labeled, failed, ... counters
-- ARGV[1]  item id
-- ARGV[2]  ItemResult JSON
-- ARGV[3]  counter to move: "labeled" or "failed"
-- ARGV[4]  the result's unaligned mentions, added to the "unaligned" counter
--
-- Only a new result moves the counter, so a redelivered shard or a duplicate task
-- can commit again without counting twice. Returns 1 when committed, 0 when the
-- item already had a result (which is kept).
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
  if tonumber(ARGV[4]) > 0 then
    redis.call('HINCRBY', KEYS[2], 'unaligned', ARGV[4])
  end
  return 1
end
return 0
