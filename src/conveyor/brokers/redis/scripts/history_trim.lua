-- history_trim.lua: drop a slice of task history records: first those whose latest state is
-- older than a time, then the oldest beyond the cap. Called again while it drops a full slice,
-- so no single call holds Redis for long.
-- KEYS[1] history (zset)   KEYS[2] records (hash)   KEYS[3] attempts (hash)
-- ARGV[1] drop records older than this   ARGV[2] most records kept   ARGV[3] slice
-- ARGV[4] history state prefix   ARGV[5..] the states
-- Returns how many records it dropped.
local slice = tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, slice)
if #ids == 0 then
  local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
  if excess <= 0 then return 0 end
  ids = redis.call('ZRANGE', KEYS[1], 0, math.min(excess, slice) - 1)
end
redis.call('ZREM', KEYS[1], unpack(ids))
redis.call('HDEL', KEYS[2], unpack(ids))
redis.call('HDEL', KEYS[3], unpack(ids))
for i = 5, #ARGV do redis.call('ZREM', ARGV[4] .. ARGV[i], unpack(ids)) end
return #ids
