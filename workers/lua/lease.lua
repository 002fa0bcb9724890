-- Take or renew a shard's lease, on the server's clock.
--
-- KEYS[1]  prelabel:run:{run}:leases  zset  shard -> server time (s) the lease runs out
-- ARGV[1]  shard number
-- ARGV[2]  lease length in seconds
--
-- A worker calls this when it starts a shard and then every third of the lease while it
-- labels it; the reconciler re-enqueues shards whose lease ran out. Returns the expiry.
local now = redis.call('TIME')
local expires = tonumber(now[1]) + tonumber(now[2]) / 1e6 + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], expires, ARGV[1])
return tostring(expires)
