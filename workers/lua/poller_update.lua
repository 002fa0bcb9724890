-- Write what the batch poller learnt of a batch still in the API's hands, unless the record
-- is already final in prelabel's terms (`collected`, or `failed`): a slow poller's stale look
-- must never move a collected batch back to a state that would be collected (and counted)
-- again.
--
-- KEYS[1]  prelabel:run:{run}:batches   hash  batch id -> BatchRecord JSON
-- ARGV[1]  batch id
-- ARGV[2]  the updated BatchRecord JSON
--
-- Returns 1 when written, 0 when the record is final or gone.
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then
  return 0
end
local status = cjson.decode(current)['status']
if status == 'collected' or status == 'failed' then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
