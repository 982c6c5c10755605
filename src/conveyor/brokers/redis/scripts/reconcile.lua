-- reconcile.lua: give back the jobs leased to an owner that the owner says it does not hold.
-- That happens when the broker lost writes in a crash or failover: an acknowledgement vanished,
-- so the job is leased again to a live worker that finished it long ago, and whose heartbeat
-- would renew that lease for ever. The worker calls this after the broker came back, from the
-- thread that fetches, so no fetch of its own is under way; every job it holds is listed.
-- Jobs given back go to the front of their queue without a death (they were not running),
-- except those started at-most-once (deaths == -1): they must not run again, so they move to
-- an already-expired lease of "<owner>:lost", and the next reclaim dead-letters them with the
-- usual reason.
-- KEYS[1..4] job store (see lib.lua)   KEYS[5] owned:<owner>   KEYS[6] leases
-- KEYS[7] owned:<owner>:lost
-- ARGV[1] ready prefix   ARGV[2] notify prefix   ARGV[3] owner   ARGV[4..] ids the owner holds
-- Returns the ids given back.
local owner = ARGV[3]
local held = {}
for i = 4, #ARGV do held[ARGV[i]] = true end

local ids = redis.call('SMEMBERS', KEYS[5])
local stray = {}
for _, id in ipairs(ids) do
  if not held[id] then stray[#stray + 1] = id end
end
if #stray == 0 then return {} end

local states = hmget(J_STATE, stray)
local metas = hmget(J_META, stray)
local out, front = {}, {}
for i, id in ipairs(stray) do
  local delivery, deaths, holder = parse_state(states[i])
  if holder == owner and metas[i] and deaths < 0 then
    redis.call('HSET', J_STATE, id, make_state(delivery, deaths, owner .. ':lost', false))
    redis.call('SADD', KEYS[7], id)
    redis.call('ZADD', KEYS[6], 0, owner .. ':lost')
    out[#out + 1] = id
  elseif holder == owner and metas[i] then
    local priority, seq, queue = parse_meta(metas[i])
    redis.call('HSET', J_STATE, id, make_state(delivery, math.max(deaths, 0), '', false))
    add_front(front, ready_key(ARGV[1], queue, priority), seq, id)
    nudge(ARGV[2] .. queue)
    out[#out + 1] = id
  end
end
push_front(front)
call_sliced('SREM', KEYS[5], stray)
return out
