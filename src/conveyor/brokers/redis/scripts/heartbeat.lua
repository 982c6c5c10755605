-- heartbeat.lua: renew every lease an owner holds (they share one expiry, so this is one
-- ZADD however many jobs it holds), record the worker as alive, and report the revoked jobs
-- among its leases.
-- KEYS[1] owned:<owner>   KEYS[2] leases   KEYS[3] revoked   KEYS[4] workers   KEYS[5] beats
-- ARGV[1] now   ARGV[2] lease expires at   ARGV[3] owner   ARGV[4] worker info (JSON)
-- Returns {id, terminate (0/1), id, terminate, ...}
redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[5], ARGV[1], ARGV[3])
if redis.call('SCARD', KEYS[1]) == 0 then return {} end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])

local out = {}
if redis.call('HLEN', KEYS[3]) > 0 then
  local now = tonumber(ARGV[1])
  local ids = redis.call('SMEMBERS', KEYS[1])
  for i = 1, #ids, 4000 do
    local last = math.min(i + 3999, #ids)
    local revokes = redis.call('HMGET', KEYS[3], unpack(ids, i, last))
    for j = 1, #revokes do
      local revoke = revokes[j]
      if revoke then
        local sep = string.find(revoke, '|', 1, true)
        if tonumber(string.sub(revoke, sep + 1)) > now then
          out[#out + 1] = ids[i + j - 1]
          out[#out + 1] = tonumber(string.sub(revoke, 1, sep - 1))
        end
      end
    end
  end
end
return out
