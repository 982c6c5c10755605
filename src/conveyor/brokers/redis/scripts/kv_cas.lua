-- kv_cas.lua: compare-and-set one coordination key: if its value is the expected one (or it is
-- absent and absence is expected), set it (with an optional ttl) or delete it.
-- KEYS[1] kv:<key>   KEYS[2] kv index
-- ARGV[1] key name   ARGV[2] "1" if a value is expected, "0" if absence is
-- ARGV[3] expected value   ARGV[4] "set" or "delete"   ARGV[5] new value   ARGV[6] ttl ms ("" = none)
-- Returns 1 if the key matched (and was changed), else 0.
local current = redis.call('GET', KEYS[1])
if ARGV[2] == '1' then
  if current ~= ARGV[3] then return 0 end
elseif current then
  return 0
end
if ARGV[4] == 'delete' then
  redis.call('DEL', KEYS[1])
elseif ARGV[6] == '' then
  redis.call('SET', KEYS[1], ARGV[5])
else
  redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[6])
end
if ARGV[4] ~= 'delete' then redis.call('ZADD', KEYS[2], 0, ARGV[1]) end
return 1
