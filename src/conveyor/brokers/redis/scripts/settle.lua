-- settle.lua: apply a batch of outcomes in order. An outcome counts only while the job is
-- leased under that very delivery number; any other is stale (the job was reclaimed and handed
-- out again, or is already settled) and is ignored. That also makes resending a batch after a
-- lost reply harmless.
-- KEYS[1..4] job store (see lib.lua)   KEYS[5] dead letters
-- KEYS[6] history (list)   KEYS[7] history records (hash)   KEYS[8] history attempts (hash)
-- KEYS[9] enqueue seq   KEYS[10] queues (set)
-- ARGV[1] ready prefix   ARGV[2] delayed prefix   ARGV[3] notify prefix   ARGV[4] result prefix
-- ARGV[5] waiting prefix   ARGV[6] done prefix   ARGV[7] owned prefix   ARGV[8] dead-letter prefix
-- ARGV[9] now   ARGV[10] result ttl (ms)
-- ARGV[11] history state prefix   ARGV[12] counters prefix   ARGV[13] counters ttl (ms)
-- ARGV[14] workflow group prefix
-- ARGV[15..] one record per outcome, its length set by its kind, then its history entry: ""
-- (none), or "state|at|runtime|retried|name" (retried: 1 if it ran before, else 0), the record
-- .. "\n" .. the payload, and the attempt ("" = none). Three arguments, not seven: packing
-- each argument costs the worker more than Lua's string.find costs Redis. Then its workflow
-- continuation (applied with an ack or dead outcome): "" (none), or "1" followed by
--   n, n x (id, queue, priority, eta or "", body)     jobs to enqueue (next chain step, callbacks)
--   n, n x (id, packed result)                        results to store (a stopped chain's steps)
--   group id ("" = no join); with one: slot index, packed slot, failed ("1"/"0"),
--     n, n x (5 job fields), n, n x (id, packed result)  applied by the group's first failure
--   ack, id, delivery, result ("" = store none)
--   start, id, delivery                  (at-most-once: dead-letter, never rerun, if the lease expires)
--   running, id, delivery                (the task started: if the lease expires, that counts a death)
--   release, id, delivery                (back to the front of its queue now)
--   retry, id, delivery, error payload ("" = none), body ("" = keep), eta, retries
--   dead, id, delivery, FAILURE result, body ("" = keep), reason
--   died, id, delivery, FAILURE result, reason ("" = back to the front of its queue)
--                                        (its -P processes child died: one death more)
local SIZE = {ack = 4, start = 3, running = 3, release = 3, retry = 7, dead = 6, died = 5}
local now, ttl = tonumber(ARGV[9]), ARGV[10]

WF.ready, WF.delayed, WF.notify, WF.result = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
WF.group, WF.seq, WF.queues, WF.now, WF.ttl = ARGV[14], KEYS[9], KEYS[10], now, ttl

local records, ids, entries, conts = {}, {}, {}, {}
local i = 15
while i <= #ARGV do
  local base = i
  records[#records + 1] = i
  ids[#ids + 1] = ARGV[i + 1]
  local head = i + SIZE[ARGV[i]]
  if ARGV[head] ~= '' then
    entries[i] = head
    i = head + 3
  else
    i = head + 1
  end
  if ARGV[i] ~= '' then
    conts[base] = i + 1
    i = skip_continuation(i + 1)
  else
    i = i + 1
  end
end

-- The task history (keys.py): the record replaces the task's last one, a failed attempt is
-- appended, and the run is added to its (minute, name) counters, summed over the batch.
-- The records and the list are written once for the whole batch, after the loop (one HSET
-- and one LPUSH, not one of each per task: each redis.call from Lua has a fixed cost that was
-- most of a success's history write). A job has at most one outcome with an entry per batch
-- (the first ends its lease, and an outcome counts only while its lease is current), so no id
-- is pushed twice.
local counts, written, listed = {}, {}, {}
local function record_history(id, h)
  local state, at, runtime, retried, name = string.match(ARGV[h], '^(%u+)|([^|]+)|([^|]+)|(%d)|(.*)$')
  runtime = tonumber(runtime)
  written[#written + 1], written[#written + 2] = id, ARGV[h + 1]
  -- A list, not a sorted set: an LPUSH is the cheapest ordered write, and records arrive in
  -- time order. A task that ran before is moved to the front: its old entry is recent (near
  -- the front), so LREM finds it after a short scan.
  if retried == '1' then redis.call('LREM', KEYS[6], 1, id) end
  listed[#listed + 1] = id
  -- Successes, the bulk, are listed from the whole list: a per-state index of them would
  -- double the writes for a listing that finds successes on every page anyway.
  if state ~= 'SUCCESS' then redis.call('ZADD', ARGV[11] .. state, at, id) end
  if state ~= 'RETRY' and retried == '1' then redis.call('ZREM', ARGV[11] .. 'RETRY', id) end
  local attempt = ARGV[h + 2]
  if attempt ~= '' then
    local old = redis.call('HGET', KEYS[8], id)
    redis.call('HSET', KEYS[8], id, old and (old .. '\n' .. attempt) or attempt)
  end
  if state == 'REVOKED' then return end
  local key = ARGV[12] .. (math.floor(tonumber(at) / 60) * 60)
  local per = counts[key]
  if not per then
    per = {}
    counts[key] = per
  end
  local c = per[name]
  if not c then
    c = {0, 0, 0, 0}
    per[name] = c
  end
  c[1] = c[1] + 1
  if state == 'FAILURE' then c[2] = c[2] + 1 elseif state == 'RETRY' then c[3] = c[3] + 1 end
  c[4] = c[4] + runtime
end

-- Current lease of each job: {delivery, deaths, owner, running}; nil when not leased (or gone).
local lease = {}
local states = hmget(J_STATE, ids)
for k = 1, #ids do
  local delivery, deaths, owner, running = parse_state(states[k])
  if owner ~= '' then lease[ids[k]] = {delivery, deaths, owner, running} end
end

local gone, unowned, front = {}, {}, {}
local function end_lease(id, current)
  lease[id] = nil
  local list = unowned[current[3]]
  if not list then
    list = {}
    unowned[current[3]] = list
  end
  list[#list + 1] = id
end

local function dead_letter(id, current, result, body, reason, deaths)
  end_lease(id, current)
  gone[#gone + 1] = id
  local priority, _, queue = parse_meta(redis.call('HGET', J_META, id))
  if body == '' then body = redis.call('HGET', J_BODY, id) end
  redis.call('HSET', ARGV[8] .. id, 'queue', queue, 'priority', priority, 'body', body,
    'reason', reason, 'failed_at', ARGV[9], 'deaths', deaths)
  redis.call('ZADD', KEYS[5], now, id)
  redis.call('SET', ARGV[4] .. id, result, 'PX', ttl)
  finished[#finished + 1] = id
end

local function release(id, current, deaths)
  end_lease(id, current)
  redis.call('HSET', J_STATE, id, make_state(current[1], deaths, '', false))
  local priority, seq, queue = parse_meta(redis.call('HGET', J_META, id))
  add_front(front, ready_key(ARGV[1], queue, priority), seq, id)
  nudge(ARGV[3] .. queue)
end

for _, base in ipairs(records) do
  local kind, id = ARGV[base], ARGV[base + 1]
  local current = lease[id]
  if current and current[1] == tonumber(ARGV[base + 2]) then
    if entries[base] then record_history(id, entries[base]) end
    if kind == 'ack' then
      end_lease(id, current)
      gone[#gone + 1] = id
      if ARGV[base + 3] ~= '' then
        redis.call('SET', ARGV[4] .. id, ARGV[base + 3], 'PX', ttl)
        finished[#finished + 1] = id
      end
      if conts[base] then continue_at(conts[base]) end
    elseif kind == 'start' then
      current[2] = -1
      redis.call('HSET', J_STATE, id, make_state(current[1], -1, current[3], false))
    elseif kind == 'running' then
      current[4] = true
      redis.call('HSET', J_STATE, id, make_state(current[1], current[2], current[3], true))
    elseif kind == 'retry' then
      end_lease(id, current)
      -- Negative: its next hand-out is a new attempt, not a redelivery (see fetch.lua).
      redis.call('HSET', J_STATE, id, make_state(-current[1], current[2], '', false))
      if ARGV[base + 4] ~= '' then redis.call('HSET', J_BODY, id, ARGV[base + 4]) end
      local err = ARGV[base + 3]
      if err == '' then -- a deferral (lock, rate limit) keeps the last attempt's error
        local old = redis.call('HGET', J_RETRY, id)
        if old then err = string.sub(old, string.find(old, '|', 1, true) + 1) end
      end
      redis.call('HSET', J_RETRY, id, ARGV[base + 6] .. '|' .. err)
      local _, _, queue = parse_meta(redis.call('HGET', J_META, id))
      local key = ARGV[2] .. queue
      local eta = tonumber(ARGV[base + 5]) or now
      local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      redis.call('ZADD', key, eta, id)
      if #first == 0 or eta < tonumber(first[2]) then nudge(ARGV[3] .. queue) end
    elseif kind == 'dead' then
      dead_letter(id, current, ARGV[base + 3], ARGV[base + 4], ARGV[base + 5], current[2])
      if conts[base] then continue_at(conts[base]) end
    elseif kind == 'release' then
      release(id, current, math.max(current[2], 0))
    elseif kind == 'died' then
      local deaths = math.max(current[2], 0) + 1
      if ARGV[base + 4] ~= '' then
        dead_letter(id, current, ARGV[base + 3], '', ARGV[base + 4], deaths)
        if conts[base] then continue_at(conts[base]) end
      else
        release(id, current, deaths)
      end
    end
  end
end

if #written > 0 then
  call_sliced('HSET', KEYS[7], written)
  call_sliced('LPUSH', KEYS[6], listed)
end

for key, per in pairs(counts) do
  for name, c in pairs(per) do
    redis.call('HINCRBY', key, 'p:' .. name, c[1])
    if c[2] > 0 then redis.call('HINCRBY', key, 'f:' .. name, c[2]) end
    if c[3] > 0 then redis.call('HINCRBY', key, 'r:' .. name, c[3]) end
    redis.call('HINCRBYFLOAT', key, 't:' .. name, c[4])
  end
  redis.call('PEXPIRE', key, ARGV[13])
end

finish_groups()
push_front(front)
for owner, list in pairs(unowned) do call_sliced('SREM', ARGV[7] .. owner, list) end
drop_jobs(gone)
wake_waiters(ARGV[5], ARGV[6], finished)
return 0
