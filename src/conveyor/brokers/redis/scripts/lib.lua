-- lib.lua: helpers prepended to the job scripts (see scripts.py). No keys of its own, but it
-- names the job store, which every job script receives first, in this order:
--   KEYS[1] job:meta   id -> "<priority>|<seq>|<queue>"
--   KEYS[2] job:body   id -> encoded envelope
--   KEYS[3] job:state  id -> "<delivery>|<deaths>[r]|<owner>" (owner empty when not leased;
--                      "r": the worker said the task is running, so losing it counts a death;
--                      a negative delivery: not handed out since its last retry, see fetch.lua)
--   KEYS[4] job:retry  id -> "<retries>|<error payload>" (absent: never retried)
local J_META, J_BODY, J_STATE, J_RETRY = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

-- Lua's unpack() holds a few thousand values at most, so batch commands go in slices. Even,
-- so that field/value and score/member pairs never split.
local SLICE = 4000

local function call_sliced(cmd, key, args)
  local n = #args
  for i = 1, n, SLICE do
    redis.call(cmd, key, unpack(args, i, math.min(i + SLICE - 1, n)))
  end
end

-- HMGET of many fields; missing ones are false.
local function hmget(key, fields)
  local n = #fields
  if n == 0 then return {} end
  local out = {}
  for i = 1, n, SLICE do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(i + SLICE - 1, n)))
    for j = 1, #part do out[#out + 1] = part[j] end
  end
  return out
end

-- meta -> priority (number), seq (number), queue
local function parse_meta(meta)
  local sep = string.find(meta, '|', 3, true)
  return tonumber(string.sub(meta, 1, 1)), tonumber(string.sub(meta, 3, sep - 1)), string.sub(meta, sep + 1)
end

-- state -> delivery, deaths, owner ('' when not leased), running (the worker said it started
-- the task); a job never handed out has none.
local function parse_state(state)
  if not state then return 0, 0, '', false end
  local a = string.find(state, '|', 1, true)
  local b = string.find(state, '|', a + 1, true)
  local deaths = string.sub(state, a + 1, b - 1)
  local running = string.byte(deaths, -1) == 114 -- 'r'
  if running then deaths = string.sub(deaths, 1, -2) end
  return tonumber(string.sub(state, 1, a - 1)), tonumber(deaths), string.sub(state, b + 1), running
end

local function make_state(delivery, deaths, owner, running)
  if running then return delivery .. '|' .. deaths .. 'r|' .. owner end
  return delivery .. '|' .. deaths .. '|' .. owner
end

-- The ready list of one (queue, priority); keys.py builds the same names.
local function ready_key(prefix, queue, priority)
  return prefix .. queue .. ':' .. priority
end

-- Jobs going back to the front of their ready lists (release, reclaim), gathered per list and
-- pushed at the end of a script, oldest (lowest enqueue seq) first in line.
local function add_front(front, key, seq, id)
  local items = front[key]
  if not items then
    items = {}
    front[key] = items
  end
  items[#items + 1] = {seq, id}
end

local function push_front(front)
  for key, items in pairs(front) do
    table.sort(items, function(a, b) return a[1] > b[1] end)
    local ids = {}
    for i, item in ipairs(items) do ids[i] = item[2] end
    call_sliced('LPUSH', key, ids) -- each goes in front of the last: the lowest seq ends first
  end
end

-- Remove jobs from the job store (not from their lists, delayed sets or owned sets).
local function drop_jobs(ids)
  if #ids == 0 then return end
  for k = 1, 4 do call_sliced('HDEL', KEYS[k], ids) end
end

-- Wake one blocked fetch on a queue. At most one token waits in the list: a burst of enqueues
-- wakes one worker, and fetch.lua passes the token on while work remains, so many idle
-- workers do not all wake for one job.
local function nudge(notify_key)
  if redis.call('LLEN', notify_key) == 0 then
    redis.call('RPUSH', notify_key, '1')
  end
end

-- Wake the callers waiting for these task ids (status.lua registered them), one token each.
-- One MGET for the batch: nothing more happens when nobody waits (the common case).
local function wake_waiters(waiting_prefix, done_prefix, ids)
  local n = #ids
  if n == 0 then return end
  local keys = {}
  for i = 1, n do keys[i] = waiting_prefix .. ids[i] end
  for i = 1, n, SLICE do
    local counts = redis.call('MGET', unpack(keys, i, math.min(i + SLICE - 1, n)))
    for j = 1, #counts do
      local count = tonumber(counts[j])
      if count then
        local k = i + j - 1
        redis.call('DEL', keys[k])
        if count > 0 then
          local tokens = {}
          for t = 1, math.min(count, 1000) do tokens[t] = '1' end
          local done = done_prefix .. ids[k]
          redis.call('RPUSH', done, unpack(tokens))
          redis.call('PEXPIRE', done, 60000)
        end
      end
    end
  end
end
