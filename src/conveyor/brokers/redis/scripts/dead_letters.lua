-- dead_letters.lua: a page of dead letters, newest first.
-- KEYS[1] dead letters
-- ARGV[1] dead-letter prefix   ARGV[2] offset   ARGV[3] limit
-- Returns {id, queue, body, reason, failed_at, deaths, ...}
local start = tonumber(ARGV[2])
local ids = redis.call('ZREVRANGE', KEYS[1], start, start + tonumber(ARGV[3]) - 1)
local out = {}
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', ARGV[1] .. id, 'queue', 'body', 'reason', 'failed_at', 'deaths')
  if f[1] then
    out[#out + 1] = id
    for k = 1, 5 do out[#out + 1] = f[k] end
  end
end
return out
