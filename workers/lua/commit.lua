-- Commit item results, each once: one call commits a group of results (a group commit).
--
-- KEYS[1]  prelabel:run:{run}:results   hash  item id -> ItemResult JSON
-- KEYS[2]  prelabel:run:{run}:counters  hash  labeled, failed, ... counters
-- ARGV     four values per result, repeated:
--            item id, ItemResult JSON, counter to move ("labeled" or "failed"),
--            a JSON object of what else the result counts, counter -> amount
--            (`ItemResult.counts()`; NER's "unaligned": its mentions not placed)
--
-- Only a new result moves the counters, so a redelivered shard or a duplicate task can
-- commit again without counting twice. Returns one flag per result, in order: 1 when this
-- call committed it, 0 when the item already had a result (which is kept).
local committed = {}
for i = 1, #ARGV, 4 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('HINCRBY', KEYS[2], ARGV[i + 2], 1)
    for counter, amount in pairs(cjson.decode(ARGV[i + 3])) do
      if amount > 0 then
        redis.call('HINCRBY', KEYS[2], counter, amount)
      end
    end
    committed[#committed + 1] = 1
  else
    committed[#committed + 1] = 0
  end
end
return committed
