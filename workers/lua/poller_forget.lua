-- Forget the submission of a batch that failed with `token_limit_exceeded`, once its wait is
-- over: the shard's next pass then submits its lines again. The record stays `failed`, with
-- `next_poll_at` 0 to say that nothing is left to do about it.
--
-- KEYS[1]  prelabel:run:{run}:batches         hash  batch id -> BatchRecord JSON
-- KEYS[2]  prelabel:run:{run}:batch-submits   hash  SHARD:KEY -> batch id
-- ARGV[1]  batch id
-- ARGV[2]  its submission field (SHARD:KEY), removed only if it still names this batch
-- ARGV[3]  the record as it is to stay (`failed`, next_poll_at 0)
--
-- Returns 1 when this call forgot it (its caller enqueues the shard), else 0.
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then
  return 0
end
local record = cjson.decode(current)
local due = tonumber(record['next_poll_at']) or 0
if record['status'] ~= 'failed' or due <= 0 then
  return 0
end
if redis.call('HGET', KEYS[2], ARGV[2]) == ARGV[1] then
  redis.call('HDEL', KEYS[2], ARGV[2])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
