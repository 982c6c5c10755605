-- workers.lua: the workers that sent a heartbeat since a cutoff, by name.
-- KEYS[1] workers   KEYS[2] beats
-- ARGV[1] cutoff (epoch seconds)
-- Returns {name, last heartbeat, info, ...}
local beats = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[1], '+inf', 'WITHSCORES')
local out = {}
for i = 1, #beats, 2 do
  out[#out + 1] = beats[i]
  out[#out + 1] = beats[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[1], beats[i]) or '{}'
end
return out
