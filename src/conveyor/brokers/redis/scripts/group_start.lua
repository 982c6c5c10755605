-- group_start.lua: register a workflow group unless it exists (settle.lua joins members to it).
-- KEYS[1] the group's hash
-- ARGV[1] size   ARGV[2] ttl (ms)   ARGV[3..7] the body: id ("" = none), queue, priority, eta
-- ("" = now), encoded envelope
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'size', ARGV[1], 'joined', 0, 'failed', 0)
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'body_id', ARGV[3], 'queue', ARGV[4], 'priority', ARGV[5],
    'eta', ARGV[6], 'body', ARGV[7])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
