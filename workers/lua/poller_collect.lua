-- Take a batch that the API finished to its final record, once: store its lines' answers,
-- count what it spent, settle its budget reservation, release its enqueued tokens and (when some of its lines are to be
-- asked again) forget its submission, all in one step. Two pollers that collect the same
-- batch at once both download it; only the first one's call does any of this.
--
-- KEYS[1]  prelabel:run:{run}:batches         hash    batch id -> BatchRecord JSON
-- KEYS[2]  prelabel:run:{run}:batch-answers   hash    custom_id -> Completion or error JSON
-- KEYS[3]  prelabel:run:{run}:counters        hash    the run's counters
-- KEYS[4]  prelabel:batch-enqueued:{url}:{model}  string  the fleet's enqueued prompt tokens
-- KEYS[5]  prelabel:run:{run}:batch-submits   hash    SHARD:KEY -> batch id
-- KEYS[6]  prelabel:run:{run}                 hash    the run's meta (active_at)
-- KEYS[7]  prelabel:run:{run}:budget          hash    tokens, musd: the run's budget
-- ARGV[1]  batch id
-- ARGV[2]  the final BatchRecord JSON (status `collected` or `failed`)
-- ARGV[3]  prompt tokens to release from KEYS[4]
-- ARGV[4]  the submission field to forget ('' for none), removed only if it still names
--          this batch
-- ARGV[5]  JSON object of counters to move, counter -> amount
-- ARGV[6]  the time (active_at), when counters move
-- ARGV[7]  tokens to add to KEYS[7] (what the lines used less the batch's reservation;
--          negative to give it back)
-- ARGV[8]  micro-dollars to add to KEYS[7], likewise
-- ARGV[9..] custom_id, answer JSON, repeated
--
-- Returns 1 when this call collected the batch, 0 when it was already final (or gone).
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then
  return 0
end
local status = cjson.decode(current)['status']
if status == 'collected' or status == 'failed' then
  return 0
end
for i = 9, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
local moved = false
for counter, amount in pairs(cjson.decode(ARGV[5])) do
  if amount > 0 then
    redis.call('HINCRBY', KEYS[3], counter, amount)
    moved = true
  end
end
if moved then
  redis.call('HSET', KEYS[6], 'active_at', ARGV[6])
end
local release = tonumber(ARGV[3])
if release > 0 and redis.call('DECRBY', KEYS[4], release) <= 0 then
  redis.call('DEL', KEYS[4])
end
local budget_tokens = tonumber(ARGV[7])
local budget_musd = tonumber(ARGV[8])
if budget_tokens ~= 0 or budget_musd ~= 0 then
  redis.call('HINCRBY', KEYS[7], 'tokens', budget_tokens)
  redis.call('HINCRBY', KEYS[7], 'musd', budget_musd)
end
if ARGV[4] ~= '' and redis.call('HGET', KEYS[5], ARGV[4]) == ARGV[1] then
  redis.call('HDEL', KEYS[5], ARGV[4])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
