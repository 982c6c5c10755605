-- workflow.lua: a workflow continuation applied with a job's ending (see settle.lua's header
-- for its argument layout), prepended after lib.lua to the scripts that end jobs: settle.lua
-- (a worker's outcome), revoke.lua (dropped while queued) and reclaim.lua (dead-lettered after
-- its worker died). Each script fills WF with its own keys and prefixes before calling these.
local WF = {ready = '', delayed = '', notify = '', result = '', group = '', seq = '', queues = '',
  now = 0, ttl = '0'}
local finished = {} -- ids given a result by this script, whose waiters are woken at its end

-- Where the argument list after a continuation's position ``p`` goes on.
local function skip_jobs(p) return p + 1 + 5 * tonumber(ARGV[p]) end
local function skip_results(p) return p + 1 + 2 * tonumber(ARGV[p]) end
local function skip_continuation(p)
  p = skip_results(skip_jobs(p))
  if ARGV[p] == '' then return p + 1 end
  return skip_results(skip_jobs(p + 4))
end

-- Enqueue one job, as enqueue.lua does, unless its id is known or has a result.
local function add_job(id, queue, priority, eta, body)
  if redis.call('HEXISTS', J_META, id) == 1 or redis.call('EXISTS', WF.result .. id) == 1 then return end
  local seq = redis.call('INCR', WF.seq)
  redis.call('HSET', J_META, id, priority .. '|' .. seq .. '|' .. queue)
  redis.call('HSET', J_BODY, id, body)
  redis.call('SADD', WF.queues, queue)
  local due = tonumber(eta)
  if not due or due <= WF.now then
    redis.call('RPUSH', ready_key(WF.ready, queue, priority), id)
    nudge(WF.notify .. queue)
  else
    local key = WF.delayed .. queue
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    redis.call('ZADD', key, due, id)
    if #first == 0 or due < tonumber(first[2]) then nudge(WF.notify .. queue) end
  end
end

local function add_jobs(p)
  local n = tonumber(ARGV[p])
  for k = 0, n - 1 do
    local f = p + 1 + 5 * k
    add_job(ARGV[f], ARGV[f + 1], ARGV[f + 2], ARGV[f + 3], ARGV[f + 4])
  end
  return p + 1 + 5 * n
end

-- ``body``: what an empty id stands for (a group's body, whose id only the group has).
local function store_results(p, body)
  local n = tonumber(ARGV[p])
  for k = 0, n - 1 do
    local f = p + 1 + 2 * k
    local id = ARGV[f]
    if id == '' then id = body end
    if id then
      redis.call('SET', WF.result .. id, ARGV[f + 1], 'PX', WF.ttl)
      finished[#finished + 1] = id
    end
  end
  return p + 1 + 2 * n
end

-- A current outcome's continuation (see settle.lua's header): the join counts a member once
-- (its slot is set only if empty); the count is added per group once per script
-- (finish_groups), and the script that fills the last slot enqueues the body. A chord's header
-- tasks end in batches, so each group's hash is read and written once per script, not once
-- per member.
local groups = {} -- group id -> {key, size, failed, added}
local function continue_at(p)
  p = store_results(add_jobs(p))
  local group = ARGV[p]
  if group == '' then return end
  local g = groups[group]
  if not g then
    local gkey = WF.group .. group
    local meta = redis.call('HMGET', gkey, 'size', 'failed')
    g = {gkey, tonumber(meta[1]), meta[2] == '1', 0}
    groups[group] = g
  end
  local size, index = g[2], tonumber(ARGV[p + 1])
  if not size or not index or index < 0 or index >= size then return end
  if redis.call('HSETNX', g[1] .. ':slots', index, ARGV[p + 2]) == 0 then return end
  g[4] = g[4] + 1
  if ARGV[p + 3] == '1' and not g[3] then -- the group's first failure
    g[3] = true
    redis.call('HSET', g[1], 'failed', '1')
    store_results(add_jobs(p + 4), redis.call('HGET', g[1], 'body_id'))
  end
end

local function finish_groups()
  for _, g in pairs(groups) do
    if g[4] > 0 then
      local pttl = redis.call('PTTL', g[1])
      if pttl > 0 then redis.call('PEXPIRE', g[1] .. ':slots', pttl) end
      local joined = redis.call('HINCRBY', g[1], 'joined', g[4])
      if joined == g[2] and not g[3] then
        local body = redis.call('HMGET', g[1], 'body_id', 'queue', 'priority', 'eta', 'body')
        if body[1] then add_job(body[1], body[2], body[3], body[4] or '', body[5]) end
      end
    end
  end
end
