-- heartbeat.lua: renew every lease an owner holds (they share one expiry, so this is one
-- ZADD however many jobs it holds), record the worker as alive, mark the jobs it says are
-- running (so that losing them with the worker counts a death, see reclaim.lua), and report
-- the revoked jobs among its leases.
-- KEYS[1..4] job store (see lib.lua)   KEYS[5] owned:<owner>   KEYS[6] leases   KEYS[7] revoked
-- KEYS[8] workers   KEYS[9] beats
-- ARGV[1] now   ARGV[2] lease expires at   ARGV[3] owner   ARGV[4] worker info (JSON)
-- ARGV[5..] 2 per running task: id, delivery
-- Returns {id, terminate (0/1), id, terminate, ...}
local owner = ARGV[3]
redis.call('HSET', KEYS[8], owner, ARGV[4])
redis.call('ZADD', KEYS[9], ARGV[1], owner)
if redis.call('SCARD', KEYS[5]) == 0 then return {} end
redis.call('ZADD', KEYS[6], ARGV[2], owner)

if #ARGV > 4 then
  local ids = {}
  for i = 5, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
  local states = hmget(J_STATE, ids)
  for k = 1, #ids do
    local delivery, deaths, holder, running = parse_state(states[k])
    if holder == owner and not running and delivery == tonumber(ARGV[4 + 2 * k]) then
      redis.call('HSET', J_STATE, ids[k], make_state(delivery, deaths, owner, true))
    end
  end
end

local out = {}
if redis.call('HLEN', KEYS[7]) > 0 then
  local now = tonumber(ARGV[1])
  local ids = redis.call('SMEMBERS', KEYS[5])
  for i = 1, #ids, SLICE do
    local last = math.min(i + SLICE - 1, #ids)
    local revokes = redis.call('HMGET', KEYS[7], unpack(ids, i, last))
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
