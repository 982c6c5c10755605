-- cleanup.lua: drop what Redis does not expire by itself: revokes past their expiry, dead
-- letters older than their ttl, workers long gone, and (a slice per call, resuming where the
-- last call stopped) names in the coordination key index whose key has expired.
-- KEYS[1] revoked   KEYS[2] dead letters   KEYS[3] workers   KEYS[4] beats
-- KEYS[5] kv index   KEYS[6] kv index cursor
-- ARGV[1] now   ARGV[2] dead letters failed before this go   ARGV[3] workers silent since go
-- ARGV[4] dead-letter prefix   ARGV[5] kv prefix   ARGV[6] index names to check per call
local now = tonumber(ARGV[1])

local cursor = '0'
repeat
  local page = redis.call('HSCAN', KEYS[1], cursor, 'COUNT', 1000)
  cursor = page[1]
  local fields = page[2]
  for i = 1, #fields, 2 do
    local revoke = fields[i + 1]
    if tonumber(string.sub(revoke, string.find(revoke, '|', 1, true) + 1)) <= now then
      redis.call('HDEL', KEYS[1], fields[i])
    end
  end
until cursor == '0'

local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
for _, id in ipairs(old) do redis.call('DEL', ARGV[4] .. id) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])

local gone = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[3])
for _, name in ipairs(gone) do redis.call('HDEL', KEYS[3], name) end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[3])

local start = redis.call('GET', KEYS[6])
local names = redis.call('ZRANGEBYLEX', KEYS[5], start and ('(' .. start) or '-', '+', 'LIMIT', 0, ARGV[6])
for _, name in ipairs(names) do
  if redis.call('EXISTS', ARGV[5] .. name) == 0 then redis.call('ZREM', KEYS[5], name) end
end
if #names < tonumber(ARGV[6]) then
  redis.call('DEL', KEYS[6])
else
  redis.call('SET', KEYS[6], names[#names])
end
return 0
