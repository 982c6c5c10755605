-- enqueue.lua: add a batch of jobs, idempotent by id (a job that exists or has a stored result
-- is not added again). One call per batch: this is also the bulk enqueue path.
-- KEYS[1..4] job store (see lib.lua)   KEYS[5] seq   KEYS[6] queues
-- ARGV[1] ready prefix   ARGV[2] delayed prefix   ARGV[3] notify prefix   ARGV[4] result prefix
-- ARGV[5..] 6 per job: id, queue, priority (0..9), eta ("" = ready now), retries, body
-- Returns one 1 (added) or 0 per job.
local FIELDS = 6
local n = (#ARGV - 4) / FIELDS
local ids, result_keys = {}, {}
for i = 1, n do
  ids[i] = ARGV[4 + (i - 1) * FIELDS + 1]
  result_keys[i] = ARGV[4] .. ids[i]
end

local known = hmget(J_META, ids)
-- One EXISTS over every result key answers the common case (none stored) in one call.
local any_result = 0
for i = 1, n, SLICE do
  any_result = any_result + redis.call('EXISTS', unpack(result_keys, i, math.min(i + SLICE - 1, n)))
end

local added, seen, count = {}, {}, 0
for i = 1, n do
  local id = ids[i]
  if known[i] or seen[id] or (any_result > 0 and redis.call('EXISTS', result_keys[i]) == 1) then
    added[i] = 0
  else
    seen[id] = true
    added[i] = 1
    count = count + 1
  end
end
if count == 0 then return added end

local seq = redis.call('INCRBY', KEYS[5], count) - count
local metas, bodies, retries = {}, {}, {}
local ready, delayed, earliest = {}, {}, {}
local queues = {} -- queue -> whether it got ready jobs
for i = 1, n do
  if added[i] == 1 then
    local base = 4 + (i - 1) * FIELDS
    local id, queue, priority, eta = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], ARGV[base + 4]
    seq = seq + 1
    metas[#metas + 1] = id
    metas[#metas + 1] = priority .. '|' .. seq .. '|' .. queue
    bodies[#bodies + 1] = id
    bodies[#bodies + 1] = ARGV[base + 6]
    if ARGV[base + 5] ~= '0' then
      retries[#retries + 1] = id
      retries[#retries + 1] = ARGV[base + 5] .. '|'
    end
    if eta == '' then
      queues[queue] = true
      local key = ready_key(ARGV[1], queue, priority)
      local list = ready[key]
      if not list then
        list = {}
        ready[key] = list
      end
      list[#list + 1] = id
    else
      queues[queue] = queues[queue] or false
      local members = delayed[queue]
      if not members then
        members = {}
        delayed[queue] = members
      end
      members[#members + 1] = eta
      members[#members + 1] = id
      local due = tonumber(eta)
      if not earliest[queue] or due < earliest[queue] then earliest[queue] = due end
    end
  end
end

call_sliced('HSET', J_META, metas)
call_sliced('HSET', J_BODY, bodies)
if #retries > 0 then call_sliced('HSET', J_RETRY, retries) end
for key, list in pairs(ready) do call_sliced('RPUSH', key, list) end
for queue, members in pairs(delayed) do
  local key = ARGV[2] .. queue
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  call_sliced('ZADD', key, members)
  -- A new earliest due time: wake a blocked fetch so it recomputes how long to block.
  if #first == 0 or earliest[queue] < tonumber(first[2]) then nudge(ARGV[3] .. queue) end
end
for queue, has_ready in pairs(queues) do
  redis.call('SADD', KEYS[6], queue)
  if has_ready then nudge(ARGV[3] .. queue) end
end
return added
