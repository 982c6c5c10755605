-- revoke.lua: remember revokes (until they expire); a job that is not leased is removed now
-- and gets a REVOKED result. A leased one is reported to its worker by heartbeat.lua.
-- KEYS[1..4] job store (see lib.lua)   KEYS[5] revoked
-- ARGV[1] ready prefix   ARGV[2] delayed prefix   ARGV[3] result prefix   ARGV[4] waiting prefix
-- ARGV[5] done prefix   ARGV[6] revoke record "terminate|expires_at"   ARGV[7] packed REVOKED
-- result   ARGV[8] its ttl (ms)   ARGV[9..] task ids
local removed = {}
for i = 9, #ARGV do
  local id = ARGV[i]
  redis.call('HSET', KEYS[5], id, ARGV[6])
  local meta = redis.call('HGET', J_META, id)
  if meta then
    local _, _, owner = parse_state(redis.call('HGET', J_STATE, id))
    if owner == '' then
      local priority, _, queue = parse_meta(meta)
      -- O(length of the list): revoking a waiting job is an operator action, not a hot path.
      redis.call('LREM', ready_key(ARGV[1], queue, priority), 1, id)
      redis.call('ZREM', ARGV[2] .. queue, id)
      redis.call('SET', ARGV[3] .. id, ARGV[7], 'PX', ARGV[8])
      removed[#removed + 1] = id
    end
  end
end
drop_jobs(removed)
wake_waiters(ARGV[4], ARGV[5], removed)
return #removed
