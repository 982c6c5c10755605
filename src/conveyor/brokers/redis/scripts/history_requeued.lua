-- history_requeued.lua: dead letters an operator requeued are waiting again: each one's record
-- is replaced by its "waiting" form and leaves the FAILURE index, unless a worker already
-- recorded a newer ending (the record is no longer the one read before the requeue).
-- KEYS[1] history records (hash)   ARGV[1] history state prefix
-- ARGV[2..] per task: id, its record as read before, its waiting record
local changed = 0
for i = 2, #ARGV, 3 do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[1], id) == ARGV[i + 1] then
    redis.call('HSET', KEYS[1], id, ARGV[i + 2])
    redis.call('ZREM', ARGV[1] .. 'FAILURE', id)
    changed = changed + 1
  end
end
return changed
