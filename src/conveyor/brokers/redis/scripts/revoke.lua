-- revoke.lua: remember revokes (until they expire); a job that is not leased is removed now
-- and gets a REVOKED result, and its workflow continuation (if any) is applied with it (a chord
-- header joins its group as failed, a chain's later steps fail: workflow.lua). A leased one is
-- reported to its worker by heartbeat.lua.
-- KEYS[1..4] job store (see lib.lua)   KEYS[5] revoked   KEYS[6] enqueue seq   KEYS[7] queues
-- ARGV[1] ready prefix   ARGV[2] delayed prefix   ARGV[3] result prefix   ARGV[4] waiting prefix
-- ARGV[5] done prefix   ARGV[6] revoke record "terminate|expires_at"   ARGV[7] packed REVOKED
-- result   ARGV[8] its ttl (ms)   ARGV[9] notify prefix   ARGV[10] workflow group prefix
-- ARGV[11] now   ARGV[12..] per task: its id, then its continuation ("" = none, or as in
-- settle.lua's header)
WF.ready, WF.delayed, WF.notify, WF.result = ARGV[1], ARGV[2], ARGV[9], ARGV[3]
WF.group, WF.seq, WF.queues, WF.now, WF.ttl = ARGV[10], KEYS[6], KEYS[7], tonumber(ARGV[11]), ARGV[8]
local removed = {}
local i = 12
while i <= #ARGV do
  local id = ARGV[i]
  local cont = nil
  if ARGV[i + 1] ~= '' then cont = i + 2 end
  i = cont and skip_continuation(cont) or i + 2
  redis.call('HSET', KEYS[5], id, ARGV[6])
  local meta = redis.call('HGET', J_META, id)
  if meta then
    local _, _, owner = parse_state(redis.call('HGET', J_STATE, id))
    -- A workflow step given no continuation (enqueued after the caller read the bodies, or a
    -- caller without the app's hook) stays queued: the fetch hands it out flagged revoked, and
    -- its worker ends its workflow (fetch.lua, step 4).
    local step = not cont and owner == '' and
      string.find(redis.call('HGET', J_BODY, id) or '', '"workflow"', 1, true)
    if owner == '' and not step then
      local priority, _, queue = parse_meta(meta)
      -- O(length of the list): revoking a waiting job is an operator action, not a hot path.
      redis.call('LREM', ready_key(ARGV[1], queue, priority), 1, id)
      redis.call('ZREM', ARGV[2] .. queue, id)
      redis.call('SET', ARGV[3] .. id, ARGV[7], 'PX', ARGV[8])
      removed[#removed + 1] = id
      if cont then continue_at(cont) end
    end
  end
end
drop_jobs(removed)
finish_groups()
for _, id in ipairs(finished) do removed[#removed + 1] = id end
wake_waiters(ARGV[4], ARGV[5], removed)
return #removed
