-- Take, renew or release a shard's lease, on the server's clock. One task holds it at a time.
--
-- KEYS[1]  prelabel:run:{run}:leases   zset  shard -> server time (s) the lease runs out
-- KEYS[2]  prelabel:run:{run}:holders  hash  shard -> token of the task holding the lease
-- ARGV[1]  shard number
-- ARGV[2]  lease length in seconds; 0 releases the lease (only if ARGV[3] holds it)
-- ARGV[3]  the calling task's token
--
-- A task takes the lease when it starts a shard and renews it every third of the lease while
-- it labels it; the reconciler re-enqueues shards whose lease ran out. Returns the expiry, or
-- false when another task holds a lease that has not run out (a copy of the shard's task,
-- re-enqueued while the first still runs: it must not label the shard a second time).
local shard, seconds, token = ARGV[1], tonumber(ARGV[2]), ARGV[3]
if seconds == 0 then
  if redis.call('HGET', KEYS[2], shard) == token then
    redis.call('ZREM', KEYS[1], shard)
    redis.call('HDEL', KEYS[2], shard)
  end
  return false
end
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1e6
local expiry = tonumber(redis.call('ZSCORE', KEYS[1], shard))
local holder = redis.call('HGET', KEYS[2], shard)
if expiry and expiry >= t and holder and holder ~= token then
  return false
end
redis.call('ZADD', KEYS[1], t + seconds, shard)
redis.call('HSET', KEYS[2], shard, token)
return tostring(t + seconds)
