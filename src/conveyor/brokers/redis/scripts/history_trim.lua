-- history_trim.lua: drop a slice of task history records from the oldest end of the history
-- list: those whose latest state is older than a time, and those beyond the cap. Called again
-- while it drops a full slice, so no single call holds Redis for long.
-- KEYS[1] history (list)   KEYS[2] records (hash)   KEYS[3] attempts (hash)
-- ARGV[1] drop records older than this   ARGV[2] most records kept   ARGV[3] slice
-- ARGV[4] history state prefix   ARGV[5..] the states
-- Returns how many records it dropped.
local older, most, slice = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local length = redis.call('LLEN', KEYS[1])
local dropped = 0
while dropped < slice and length > 0 do
  local id = redis.call('LINDEX', KEYS[1], -1)
  if length <= most then
    local value = redis.call('HGET', KEYS[2], id)
    -- The record's "finished" (its latest state's time) is a plain JSON number.
    local at = value and tonumber(string.match(value, '"finished":([-+.%deE]+)'))
    if at and at >= older then break end
  end
  redis.call('RPOP', KEYS[1])
  length = length - 1
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
  for i = 5, #ARGV do redis.call('ZREM', ARGV[4] .. ARGV[i], id) end
  dropped = dropped + 1
end
return dropped
