"""The tenant lock's Lua scripts (see :mod:`service.state.locks` for what the lock promises).

Each runs atomically in Redis and documents its KEYS and ARGV where it is defined.
"""

from __future__ import annotations

from service.state.epoch import EPOCH_CHECK_LUA

# KEYS: epoch, quarantine, lock, fence, calling, wanted. ARGV: known epoch, fresh epoch,
# quarantine ms, owner, ttl ms, highest fence this process was given for the tenant, how long
# (ms) a waiter's mark lasts (0: this attempt does not wait, no mark).
# Returns an epoch verdict, {'quarantine', ms left}, {'taken', ms left} or
# {'held', fence, 1 if the calling marker is set}. A waiter that finds the lock taken leaves
# its mark (see service.state.locks.LeaseKeys).
ACQUIRE = (
    EPOCH_CHECK_LUA
    + """
local quiet = redis.call('PTTL', KEYS[2])
if quiet > 0 then
  return {'quarantine', quiet}
end
if not redis.call('SET', KEYS[3], ARGV[4], 'NX', 'PX', ARGV[5]) then
  if tonumber(ARGV[7]) > 0 then
    redis.call('SET', KEYS[6], '1', 'PX', ARGV[7])
  end
  return {'taken', redis.call('PTTL', KEYS[3])}
end
if redis.call('EXISTS', KEYS[4]) == 0 then
  local now = redis.call('TIME')
  redis.call('SET', KEYS[4], now[1] .. string.rep('0', 6 - #now[2]) .. now[2])
end
local fence = redis.call('INCR', KEYS[4])
if fence <= tonumber(ARGV[6]) then
  redis.call('DEL', KEYS[3])
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return {'lost', ARGV[2]}
end
return {'held', fence, redis.call('EXISTS', KEYS[5])}
"""
)

# KEYS: epoch, quarantine, lock. ARGV: known epoch, fresh epoch, quarantine ms, owner, ttl ms.
# Returns an epoch verdict, {'held'} or {'lost'}.
RENEW = (
    EPOCH_CHECK_LUA
    + """
if redis.call('GET', KEYS[3]) == ARGV[4] then
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
  return {'held'}
end
return {'lost'}
"""
)

# KEYS: lock, calling, wanted. ARGV: owner, '1' if no call of ours may still be running,
# channel. Deletes (and clears the calling marker and the waiters' mark, and notifies) only if
# still the owner: a waiter that loses the race for the lock leaves its mark again.
RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[3])
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[3], '1')
return 1
"""

WANTED_MARGIN_MS = 1000
"""A waiter's mark outlasts its wait by this much: it tries again (and marks again) by then."""
