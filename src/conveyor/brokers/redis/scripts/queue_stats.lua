-- queue_stats.lua: per queue, how many jobs are ready (per priority), delayed and leased, and
-- the body of its oldest ready job (the earliest enqueued of the heads of its priority lists).
-- Queues with none are dropped from the queues set. Leased counts walk the owners' leased sets
-- (bounded by the workers' prefetch): an operator call, not a hot path.
-- KEYS[1..4] job store (see lib.lua)   KEYS[5] queues   KEYS[6] leases
-- ARGV[1] ready prefix   ARGV[2] delayed prefix   ARGV[3] owned prefix
-- Returns {queue, delayed, leased, ready at priority 0, ..., ready at priority 9,
--          oldest ready body or false, ...}   (14 entries per queue)
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
  local counts, ready = {}, 0
  local oldest_id, oldest_seq = false, nil
  for priority = 0, 9 do
    local key = ready_key(ARGV[1], queue, priority)
    local n = redis.call('LLEN', key)
    counts[priority + 1] = n
    ready = ready + n
    if n > 0 then
      local head = redis.call('LINDEX', key, 0)
      local meta = redis.call('HGET', J_META, head)
      if meta then
        local _, seq = parse_meta(meta)
        if oldest_seq == nil or seq < oldest_seq then oldest_id, oldest_seq = head, seq end
      end
    end
  end
  local delayed = redis.call('ZCARD', ARGV[2] .. queue)
  local held = leased[queue] or 0
  if ready + delayed + held == 0 then
    redis.call('SREM', KEYS[5], queue)
  else
    out[#out + 1] = queue
    out[#out + 1] = delayed
    out[#out + 1] = held
    for i = 1, 10 do out[#out + 1] = counts[i] end
    out[#out + 1] = oldest_id and redis.call('HGET', J_BODY, oldest_id) or false
  end
end
return out
