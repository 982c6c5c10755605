-- bring_forward.lua: make delayed jobs due now: each moves to the end of its ready list, as
-- fetch.lua promotes a job whose eta passed (a rate limit changed: the start times it gave
-- them are void).
-- KEYS[1..4] job store (see lib.lua)
-- ARGV[1] ready prefix   ARGV[2] delayed prefix   ARGV[3] notify prefix   ARGV[4..] task ids
-- Returns how many moved (ids not delayed now: ready, leased or gone, are skipped).
local moved = 0
for i = 4, #ARGV do
  local id = ARGV[i]
  local meta = redis.call('HGET', J_META, id)
  if meta then
    local priority, _, queue = parse_meta(meta)
    if redis.call('ZREM', ARGV[2] .. queue, id) == 1 then
      redis.call('RPUSH', ready_key(ARGV[1], queue, priority), id)
      nudge(ARGV[3] .. queue)
      moved = moved + 1
    end
  end
end
return moved
