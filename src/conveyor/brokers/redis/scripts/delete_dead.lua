-- delete_dead.lua: delete the given dead letters.
-- KEYS[1] dead letters
-- ARGV[1] dead-letter prefix   ARGV[2..] task ids
-- Returns how many were deleted.
local deleted = 0
for i = 2, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then deleted = deleted + 1 end
  redis.call('DEL', ARGV[1] .. ARGV[i])
end
return deleted
