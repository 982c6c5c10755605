-- requeue_dead.lua: move dead letters back to the end of their queue (same priority, deaths
-- and retries reset); their stored result and revoke are forgotten.
-- KEYS[1..4] job store (see lib.lua)   KEYS[5] dead letters   KEYS[6] seq   KEYS[7] queues
-- KEYS[8] revoked
-- ARGV[1] dead-letter prefix   ARGV[2] ready prefix   ARGV[3] notify prefix
-- ARGV[4] result prefix   ARGV[5..] task ids
-- Returns the ids that went back to a queue.
local moved = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local record = ARGV[1] .. id
  local f = redis.call('HMGET', record, 'queue', 'priority', 'body')
  if f[1] then
    redis.call('DEL', record)
    redis.call('ZREM', KEYS[5], id)
    redis.call('DEL', ARGV[4] .. id)
    redis.call('HDEL', KEYS[8], id)
    if redis.call('HEXISTS', J_META, id) == 0 then
      local seq = redis.call('INCR', KEYS[6])
      redis.call('HSET', J_META, id, f[2] .. '|' .. seq .. '|' .. f[1])
      redis.call('HSET', J_BODY, id, f[3])
      redis.call('RPUSH', ready_key(ARGV[2], f[1], f[2]), id)
      redis.call('SADD', KEYS[7], f[1])
      nudge(ARGV[3] .. f[1])
      moved[#moved + 1] = id
    end
  end
end
return moved
