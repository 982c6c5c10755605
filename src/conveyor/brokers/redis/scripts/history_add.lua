-- history_add.lua: store task history records that no settle carries (a task revoked before a
-- worker fetched it, a job dead-lettered because its workers died), as settle.lua stores a
-- settled one: the record replaces the task's last one, its attempt is appended.
-- KEYS[1] history (list)   KEYS[2] history records (hash)   KEYS[3] history attempts (hash)
-- ARGV[1] history state prefix   ARGV[2] counters prefix   ARGV[3] counters ttl (ms)
-- ARGV[4] number of records, then per record: id, state, at, record .. "\n" .. payload, attempt
-- ("" = none); then per counter row: minute, name, processed, failed, retried, runtime.
local n = tonumber(ARGV[4])
local i = 5
for _ = 1, n do
  local id, state, at, value, attempt = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  redis.call('HSET', KEYS[2], id, value)
  redis.call('LPUSH', KEYS[1], id)
  if state ~= 'SUCCESS' then redis.call('ZADD', ARGV[1] .. state, at, id) end
  if state ~= 'RETRY' then redis.call('ZREM', ARGV[1] .. 'RETRY', id) end
  if attempt ~= '' then
    local old = redis.call('HGET', KEYS[3], id)
    redis.call('HSET', KEYS[3], id, old and (old .. '\n' .. attempt) or attempt)
  end
  i = i + 5
end
while i <= #ARGV do
  local key, name = ARGV[2] .. ARGV[i], ARGV[i + 1]
  redis.call('HINCRBY', key, 'p:' .. name, ARGV[i + 2])
  if ARGV[i + 3] ~= '0' then redis.call('HINCRBY', key, 'f:' .. name, ARGV[i + 3]) end
  if ARGV[i + 4] ~= '0' then redis.call('HINCRBY', key, 'r:' .. name, ARGV[i + 4]) end
  redis.call('HINCRBYFLOAT', key, 't:' .. name, ARGV[i + 5])
  redis.call('PEXPIRE', key, ARGV[3])
  i = i + 6
end
return n
