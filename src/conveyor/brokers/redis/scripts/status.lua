-- status.lua: what the broker knows about one task id, read atomically; optionally registers
-- the caller as waiting for it (AsyncResult.get), so that whoever finishes it pushes a token to
-- done:<id> (lib.lua wake_waiters). Registering in the same step as reading closes the race
-- between "not finished yet" and blocking on done:<id>.
-- KEYS[1] result:<id>   KEYS[2] job:meta   KEYS[3] job:state   KEYS[4] job:retry
-- KEYS[5] waiting:<id>
-- ARGV[1] id   ARGV[2] register as a waiter for this many ms ("" = don't)
-- Returns {1, packed result} | {0} (unknown) | {2, state or nil, retry or nil}
local result = redis.call('GET', KEYS[1])
if result then return {1, result} end
if ARGV[2] ~= '' then
  redis.call('INCR', KEYS[5])
  redis.call('PEXPIRE', KEYS[5], ARGV[2])
end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return {0} end
return {2, redis.call('HGET', KEYS[3], ARGV[1]), redis.call('HGET', KEYS[4], ARGV[1])}
