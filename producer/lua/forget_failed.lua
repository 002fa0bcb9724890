-- forget_failed.lua: forget failed items' results, so that their shards' tasks label them again.
--
-- KEYS[1]  prelabel:run:{run}:results   hash  item id -> ItemResult JSON
-- KEYS[2]  prelabel:run:{run}:counters  hash  `failed` goes down by one per result forgotten
-- ARGV     item ids whose results were read as failed
--
-- A result is forgotten only if it still reads as failed (a worker may have written it anew
-- in between), so the counters and the results stay in step. Returns how many it forgot.

local forgotten = 0
for _, id in ipairs(ARGV) do
  local raw = redis.call('HGET', KEYS[1], id)
  if raw then
    local ok, result = pcall(cjson.decode, raw)
    if ok and type(result) == 'table' and result.status == 'failed' then
      redis.call('HDEL', KEYS[1], id)
      forgotten = forgotten + 1
    end
  end
end
if forgotten > 0 then
  redis.call('HINCRBY', KEYS[2], 'failed', -forgotten)
end
return forgotten
