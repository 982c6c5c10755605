-- reclaim.lua: the jobs of owners whose leases expired (the worker died) go back to the front
-- of their queue. A job the worker had said was running (heartbeat.lua, or a "running" settle)
-- counts one more death, and goes to the dead letters once it reached max_deaths; one started
-- at-most-once (deaths == -1) goes there at once. A job the worker only held (prefetched, never
-- started) goes back without a death: it did not kill anyone. A dead letter needs a reason and
-- a FAILURE result that Python builds (conveyor.brokers.payloads), so a job due to die is
-- first returned as "to prepare" and moved by the next call, which passes them in.
-- A prepared dead letter also carries its workflow continuation (workflow.lua), applied with
-- the move: a chord header joins its group as failed, a chain's later steps fail.
-- KEYS[1..4] job store (see lib.lua)   KEYS[5] leases   KEYS[6] dead letters
-- KEYS[7] enqueue seq   KEYS[8] queues
-- ARGV[1] ready prefix   ARGV[2] notify prefix   ARGV[3] owned prefix   ARGV[4] dead-letter prefix
-- ARGV[5] result prefix   ARGV[6] waiting prefix   ARGV[7] done prefix   ARGV[8] now
-- ARGV[9] max deaths   ARGV[10] result ttl (ms)   ARGV[11] most owners to look at
-- ARGV[12] delayed prefix   ARGV[13] workflow group prefix
-- ARGV[14..] per prepared dead letter: id, deaths, reason, packed FAILURE result, then its
-- continuation ("" = none, or as in settle.lua's header)
-- Returns {requeued ids, dead ids, {id, deaths, retries, ...} to prepare}
local owners = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', '(' .. ARGV[8], 'LIMIT', 0, ARGV[11])
if #owners == 0 then return {{}, {}, {}} end
local now, max_deaths = tonumber(ARGV[8]), tonumber(ARGV[9])
WF.ready, WF.delayed, WF.notify, WF.result = ARGV[1], ARGV[12], ARGV[2], ARGV[5]
WF.group, WF.seq, WF.queues, WF.now, WF.ttl = ARGV[13], KEYS[7], KEYS[8], now, ARGV[10]

local prepared = {}
local i = 14
while i <= #ARGV do
  local cont = nil
  if ARGV[i + 4] ~= '' then cont = i + 5 end
  prepared[ARGV[i]] = {tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3], cont}
  i = cont and skip_continuation(cont) or i + 5
end

local requeued, dead, pending, gone, front = {}, {}, {}, {}, {}
for _, owner in ipairs(owners) do
  local owned = ARGV[3] .. owner
  local ids = redis.call('SMEMBERS', owned)
  local states = hmget(J_STATE, ids)
  local metas = hmget(J_META, ids)
  local left = 0
  for i, id in ipairs(ids) do
    local delivery, deaths, holder, running = parse_state(states[i])
    if holder ~= owner or not metas[i] then
      redis.call('SREM', owned, id) -- not this owner's any more; cannot happen, tidy anyway
    else
      local count = deaths
      if count >= 0 and running then count = count + 1 end
      local dies = count < 0 or count >= max_deaths
      local ready = prepared[id]
      local priority, seq, queue = parse_meta(metas[i])
      if not dies then
        redis.call('HSET', J_STATE, id, make_state(delivery, count, '', false))
        add_front(front, ready_key(ARGV[1], queue, priority), seq, id)
        redis.call('SREM', owned, id)
        nudge(ARGV[2] .. queue)
        requeued[#requeued + 1] = id
      elseif ready and ready[1] == count then
        redis.call('HSET', ARGV[4] .. id, 'queue', queue, 'priority', priority,
          'body', redis.call('HGET', J_BODY, id), 'reason', ready[2], 'failed_at', ARGV[8],
          'deaths', count)
        redis.call('ZADD', KEYS[6], now, id)
        redis.call('SET', ARGV[5] .. id, ready[3], 'PX', ARGV[10])
        redis.call('SREM', owned, id)
        gone[#gone + 1] = id
        dead[#dead + 1] = id
        if ready[4] then continue_at(ready[4]) end
      else
        local retries = redis.call('HGET', J_RETRY, id)
        pending[#pending + 1] = id
        pending[#pending + 1] = count
        pending[#pending + 1] = retries and tonumber(string.sub(retries, 1, string.find(retries, '|', 1, true) - 1)) or 0
        left = left + 1
      end
    end
  end
  if left == 0 then
    redis.call('DEL', owned)
    redis.call('ZREM', KEYS[5], owner)
  end
end
push_front(front)
drop_jobs(gone)
finish_groups()
for _, id in ipairs(finished) do gone[#gone + 1] = id end
wake_waiters(ARGV[6], ARGV[7], gone)
return {requeued, dead, pending}
