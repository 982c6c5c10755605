-- queue_stats.lua: per queue, how many jobs are ready, delayed and leased. Queues with none
-- are dropped from the queues set. Leased counts walk the owners' leased sets (bounded by the
-- workers' prefetch): an operator call, not a hot path.
-- KEYS[1..4] job store (see lib.lua)   KEYS[5] queues   KEYS[6] leases
-- ARGV[1] ready prefix   ARGV[2] delayed prefix   ARGV[3] owned prefix
-- Returns {queue, ready, delayed, leased, ...}
local leased = {}
for _, owner in ipairs(redis.call('ZRANGE', KEYS[6], 0, -1)) do
  local metas = hmget(J_META, redis.call('SMEMBERS', ARGV[3] .. owner))
  for i = 1, #metas do
    if metas[i] then
      local _, _, queue = parse_meta(metas[i])
      leased[queue] = (leased[queue] or 0) + 1
    end
  end
end
local out = {}
for _, queue in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  local ready = 0
  for priority = 0, 9 do ready = ready + redis.call('LLEN', ready_key(ARGV[1], queue, priority)) end
  local delayed = redis.call('ZCARD', ARGV[2] .. queue)
  local held = leased[queue] or 0
  if ready + delayed + held == 0 then
    redis.call('SREM', KEYS[5], queue)
  else
    out[#out + 1] = queue
    out[#out + 1] = ready
    out[#out + 1] = delayed
    out[#out + 1] = held
  end
end
return out
