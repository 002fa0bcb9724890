-- front.lua: move shard tasks' messages to the head of their queue, so that a recovered shard
-- is the next one a worker takes rather than the last.
--
-- KEYS[1]  the Celery queue: a Redis list; Kombu LPUSHes new messages and workers BRPOP the
--          other end (where Kombu itself puts back the messages it restores)
-- ARGV     the task ids to move (`RUN:shard:N`)
--
-- Only the `#ARGV + 1000` newest messages are searched: the messages to move were pushed a
-- moment ago. A message not found stays where it is (a worker took it already, or a producer
-- pushed a thousand others since): it is late, not lost. Returns how many messages moved.

local wanted = {}
for _, id in ipairs(ARGV) do wanted[id] = true end
local newest = redis.call('LRANGE', KEYS[1], 0, #ARGV + 999)
local moved = 0
for _, raw in ipairs(newest) do
  -- A cheap test first (the id as a JSON string), then the exact one on the decoded message.
  local id = string.match(raw, '"id": *"([^"]+)"')
  if id and wanted[id] then
    local ok, message = pcall(cjson.decode, raw)
    if ok and type(message) == 'table' and type(message.headers) == 'table'
        and message.headers.id == id then
      redis.call('LREM', KEYS[1], 1, raw)
      redis.call('RPUSH', KEYS[1], raw)
      wanted[id] = nil
      moved = moved + 1
    end
  end
end
return moved
