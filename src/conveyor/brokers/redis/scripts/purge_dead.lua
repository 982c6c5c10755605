-- purge_dead.lua: delete every dead letter.
-- KEYS[1] dead letters
-- ARGV[1] dead-letter prefix
-- Returns how many were deleted.
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, id in ipairs(ids) do redis.call('DEL', ARGV[1] .. id) end
redis.call('DEL', KEYS[1])
return #ids
