-- kv_scan.lua: every live coordination key whose name starts with a prefix, by lex range over
-- the name index; names whose key has expired are dropped from the index on the way.
-- KEYS[1] kv index
-- ARGV[1] kv prefix   ARGV[2] lex range start   ARGV[3] lex range end
-- Returns {name, value, ttl ms (-1 = none), ...}
local out = {}
for _, name in ipairs(redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], ARGV[3])) do
  local key = ARGV[1] .. name
  local value = redis.call('GET', key)
  if value then
    out[#out + 1] = name
    out[#out + 1] = value
    out[#out + 1] = redis.call('PTTL', key)
  else
    redis.call('ZREM', KEYS[1], name)
  end
end
return out
