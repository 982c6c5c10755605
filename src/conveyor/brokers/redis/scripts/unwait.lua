-- unwait.lua: a waiter gave up (timeout) before being woken: take it off the count.
-- KEYS[1] waiting:<id>
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('DECR', KEYS[1]) <= 0 then
  redis.call('DEL', KEYS[1])
end
return 0
