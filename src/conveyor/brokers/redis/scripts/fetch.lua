-- fetch.lua: lease up to `limit` ready jobs of the given queues to one owner: highest priority
-- first, then oldest (by enqueue seq) across the queues. Promotes due delayed jobs first; flags
-- revoked jobs (their worker settles them as REVOKED, with their history, never running them);
-- and, when the caller names fetches whose reply was lost, hands their jobs out again if this
-- owner still holds them (else they would stay leased to a live worker that does not know it
-- has them).
-- KEYS[1..4] job store (see lib.lua)   KEYS[5] leases   KEYS[6] revoked
-- KEYS[7] owned:<owner>   KEYS[8] fetched:<owner>
-- ARGV[1] ready prefix   ARGV[2] delayed prefix   ARGV[3] notify prefix   ARGV[4] now
-- ARGV[5] limit   ARGV[6] lease expires at   ARGV[7] owner   ARGV[8] this call's nonce
-- ARGV[9] nonces of earlier calls whose reply was lost, "," separated ("" = none)
-- ARGV[10] most delayed jobs to promote   ARGV[11..] queue names (distinct)
-- Returns {next_eta, id, queue, body, delivery, deaths, redelivered (0/1; 2: revoked), id, ...}; next_eta
-- ("" = none) is the earliest due time among the queues' delayed jobs, given when nothing was
-- leased.
--
-- Delivery numbers fence stale settles, so they must never repeat for a job, not even after a
-- crash or failover that lost the last writes (the job's counter would go back and a number
-- already held by a live worker would be handed out again). So a new number is the larger of
-- the old one + 1 and the server's clock in milliseconds: a rewound counter restarts above
-- anything handed out before the crash. A negative stored number means "not handed out since
-- its last retry" (settle.lua), so `redelivered` is true only after a crash or a release.
local now, limit, owner = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[7]
local queues = {}
for i = 11, #ARGV do queues[#queues + 1] = ARGV[i] end

local out = {''}
local leased = {} -- ids handed out by this call, in order
local clock = redis.call('TIME')
local clock_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

-- Whether a revoke record ("terminate|expires", or nil) is live: its job is handed out flagged 2.
local function live(revoke)
  return revoke and tonumber(string.sub(revoke, string.find(revoke, '|', 1, true) + 1)) > now
end

-- 1. A lost reply: hand that fetch's jobs out again if this owner still holds them (flagged
-- again if revoked: handed out unflagged, a revoked job would run).
if ARGV[9] ~= '' then
  local last = redis.call('GET', KEYS[8])
  if last then
    local record = cmsgpack.unpack(last)
    if string.find(',' .. ARGV[9] .. ',', ',' .. record[1] .. ',', 1, true) then
      for i = 2, #record do
        local id = record[i]
        local delivery, deaths, holder = parse_state(redis.call('HGET', J_STATE, id))
        if holder == owner then
          local _, _, queue = parse_meta(redis.call('HGET', J_META, id))
          leased[#leased + 1] = id
          local n = #out
          out[n + 1], out[n + 2], out[n + 3] = id, queue, redis.call('HGET', J_BODY, id)
          local flag = live(redis.call('HGET', KEYS[6], id)) and 2 or 0
          out[n + 4], out[n + 5], out[n + 6] = delivery, deaths, flag
        end
      end
    end
  end
end

-- 2. Promote due delayed jobs of these queues to the end of their ready lists, in eta order.
local cap = tonumber(ARGV[10])
for _, queue in ipairs(queues) do
  local key = ARGV[2] .. queue
  local due = redis.call('ZRANGEBYSCORE', key, '-inf', now, 'LIMIT', 0, cap)
  if #due > 0 then
    local metas = hmget(J_META, due)
    local lists = {}
    for i = 1, #due do
      if metas[i] then
        local list_key = ready_key(ARGV[1], queue, string.sub(metas[i], 1, 1))
        local list = lists[list_key]
        if not list then
          list = {}
          lists[list_key] = list
        end
        list[#list + 1] = due[i]
      end
    end
    for list_key, list in pairs(lists) do call_sliced('RPUSH', list_key, list) end
    call_sliced('ZREM', key, due)
  end
end

-- 3. Choose, highest priority first. One queue: LMPOP takes from the first non-empty of its
-- ten lists (9 first), usually in one call. Several queues: per priority, merge the heads of
-- their lists by enqueue seq, keeping each list's order.
local need = limit - #leased
local chosen, chosen_queue = {}, {}
if #queues == 1 then
  local queue, lmpop = queues[1], {10}
  for priority = 9, 0, -1 do lmpop[#lmpop + 1] = ready_key(ARGV[1], queue, priority) end
  lmpop[12], lmpop[13] = 'LEFT', 'COUNT'
  while need > 0 do
    lmpop[14] = need
    local popped = redis.call('LMPOP', unpack(lmpop))
    if not popped then break end
    for _, id in ipairs(popped[2]) do
      chosen[#chosen + 1] = id
      chosen_queue[#chosen] = queue
    end
    need = need - #popped[2]
  end
else
  for priority = 9, 0, -1 do
    if need <= 0 then break end
    local lists = {}
    for _, queue in ipairs(queues) do
      local key = ready_key(ARGV[1], queue, priority)
      if redis.call('LLEN', key) > 0 then lists[#lists + 1] = {key, queue} end
    end
    if #lists == 1 then
      local ids = redis.call('LPOP', lists[1][1], need)
      for _, id in ipairs(ids) do
        chosen[#chosen + 1] = id
        chosen_queue[#chosen] = lists[1][2]
      end
      need = need - #ids
    elseif #lists > 1 then
      local heads, seqs, all = {}, {}, {}
      for l, list in ipairs(lists) do
        heads[l] = redis.call('LRANGE', list[1], 0, need - 1)
        for _, id in ipairs(heads[l]) do all[#all + 1] = id end
      end
      local metas = hmget(J_META, all)
      local k = 0
      for l = 1, #lists do
        seqs[l] = {}
        for i = 1, #heads[l] do
          k = k + 1
          local seq = 0
          if metas[k] then
            local _
            _, seq = parse_meta(metas[k])
          end
          seqs[l][i] = seq
        end
      end
      local taken = {}
      for l = 1, #lists do taken[l] = 0 end
      while need > 0 do
        local best, best_seq = nil, nil
        for l = 1, #lists do
          local seq = seqs[l][taken[l] + 1]
          if seq and (best_seq == nil or seq < best_seq) then best, best_seq = l, seq end
        end
        if not best then break end
        taken[best] = taken[best] + 1
        chosen[#chosen + 1] = heads[best][taken[best]]
        chosen_queue[#chosen] = lists[best][2]
        need = need - 1
      end
      for l = 1, #lists do
        if taken[l] > 0 then redis.call('LPOP', lists[l][1], taken[l]) end
      end
    end
  end
end
-- need > 0 now means every ready list of these queues is empty.
local drained = need > 0

-- 4. Flag revoked jobs (2): leased like any other, so that their worker settles them as REVOKED
-- without running them, with their history record (and a workflow step with its workflow's
-- continuation). Dropped here, a job revoked while a worker held it, then requeued (its worker
-- died, or gave it back at shutdown), would end with no record of it.
local revoked_jobs = {}
if #chosen > 0 and redis.call('HLEN', KEYS[6]) > 0 then
  local revokes = hmget(KEYS[6], chosen) -- one read for the batch: revokes are kept for days
  for i = 1, #chosen do
    if live(revokes[i]) then revoked_jobs[chosen[i]] = true end
  end
end

-- 5. Lease the rest: one call per field for the whole batch.
if #chosen > 0 then
  local states = hmget(J_STATE, chosen)
  local bodies = hmget(J_BODY, chosen)
  local ids, state_pairs = {}, {}
  for i = 1, #chosen do
    local id, body = chosen[i], bodies[i]
    if body then -- (a listed id without a job cannot happen; skip it rather than fail)
      local old, deaths = parse_state(states[i])
      local delivery = math.max(math.abs(old) + 1, clock_ms)
      ids[#ids + 1] = id
      state_pairs[#state_pairs + 1] = id
      state_pairs[#state_pairs + 1] = make_state(delivery, deaths, owner, false)
      leased[#leased + 1] = id
      local n = #out
      out[n + 1], out[n + 2], out[n + 3], out[n + 4] = id, chosen_queue[i], body, delivery
      out[n + 5], out[n + 6] = deaths, revoked_jobs[id] and 2 or (old > 0 and 1 or 0)
    end
  end
  if #ids > 0 then
    call_sliced('HSET', J_STATE, state_pairs)
    call_sliced('SADD', KEYS[7], ids)
  end
end

-- 6. Pass the wake-up on while work may remain; clear a stale token once all is drained.
for _, queue in ipairs(queues) do
  if drained then redis.call('DEL', ARGV[3] .. queue) else nudge(ARGV[3] .. queue) end
end

if #leased > 0 then
  -- The owner's leases all expire together; its heartbeat (or this fetch) renews them.
  redis.call('ZADD', KEYS[5], ARGV[6], owner)
  -- 7. Remember what this call handed out, in case its reply is lost on the way.
  local record = {ARGV[8]}
  for i = 1, #leased do record[i + 1] = leased[i] end
  redis.call('SET', KEYS[8], cmsgpack.pack(record), 'PX', 600000)
else
  -- 8. Nothing to lease: tell the caller when the next delayed job comes due.
  local next_eta = nil
  for _, queue in ipairs(queues) do
    local first = redis.call('ZRANGE', ARGV[2] .. queue, 0, 0, 'WITHSCORES')
    if #first > 0 and (next_eta == nil or tonumber(first[2]) < next_eta) then next_eta = tonumber(first[2]) end
  end
  if next_eta then out[1] = string.format('%.6f', next_eta) end
end
return out
