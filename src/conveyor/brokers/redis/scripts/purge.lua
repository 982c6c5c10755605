-- purge.lua: delete the ready and delayed jobs of some queues (leased ones are left alone).
-- KEYS[1..4] job store (see lib.lua)
-- ARGV[1] ready prefix   ARGV[2] delayed prefix   ARGV[3] notify prefix   ARGV[4..] queue names
-- Returns how many jobs were deleted.
local count = 0
for i = 4, #ARGV do
  local queue = ARGV[i]
  local keys = {ARGV[2] .. queue}
  for priority = 0, 9 do keys[#keys + 1] = ready_key(ARGV[1], queue, priority) end
  for k, key in ipairs(keys) do
    local ids
    if k == 1 then ids = redis.call('ZRANGE', key, 0, -1) else ids = redis.call('LRANGE', key, 0, -1) end
    drop_jobs(ids)
    redis.call('DEL', key)
    count = count + #ids
  end
  redis.call('DEL', ARGV[3] .. queue)
end
return count
