"""The ledger's Lua scripts (see :mod:`service.state.ledger` for what the entries mean).

Each script runs atomically in Redis; every one that writes for a transactional call first
checks the epoch (:data:`~service.state.epoch.EPOCH_CHECK_LUA`) and the caller's lease, so a
write can never land under a lock that is no longer held or after Redis lost its data. Each
documents its KEYS and ARGV where it is defined.
"""

from __future__ import annotations

from service.state.epoch import EPOCH_CHECK_LUA

# The steps every script below is made of.
# ``begin`` looks an entry up and, if it is unknown (or an intent under the caller's own
# non-empty claim), writes an intent; it returns {state, fingerprint, attempts} of what it
# found, or false (go ahead). An intent it reports to anyone else is orphaned (its claim
# cleared): a verdict of "in doubt" has now been given, so its writer, if alive, must not
# write its result later as if nobody had looked.
# ``delivered`` records a SUCCESS and ``withdraw`` forgets an intent — under a claim, only if
# the entry is still that claim's intent (or gone: a loss of Redis data, or this very withdraw
# run earlier; or, for ``delivered``, already delivered with this fingerprint by this very
# write); they return 0 when the entry was superseded, 1 when written.
# An intent also keeps ``at``: Redis's clock, in ms, when it was written (just before the first
# attempt), read once per script. A transactional intent keeps ``tried`` too: when its latest
# attempt began (``at`` at first, then NOTE_ATTEMPTS before each later call);
# ``ledger resolve --not-delivered`` is timed from it, or from ``at`` for entries without it
# (master data, and intents of a release that did not record its attempts). ``tried`` is a field
# of its own so a release that does not know it reads the entry as before.
STEPS = """
local intent_at = nil
local function begin(key, digest, claim, retention)
  local entry = redis.call('HMGET', key, 'state', 'fingerprint', 'attempts', 'claim')
  if entry[1] and not (claim ~= '' and entry[1] == 'intent' and entry[4] == claim) then
    if entry[1] == 'intent' and entry[4] ~= '' then
      redis.call('HSET', key, 'claim', '')
    end
    return {entry[1], entry[2], entry[3]}
  end
  if not intent_at then
    local now = redis.call('TIME')
    intent_at = now[1] .. string.format('%03d', math.floor(tonumber(now[2]) / 1000))
  end
  redis.call('HSET', key, 'state', 'intent', 'fingerprint', digest, 'attempts', '0',
             'claim', claim, 'at', intent_at)
  redis.call('PEXPIRE', key, retention)
  return false
end
local function superseded(key, claim)
  if claim == '' then
    return false
  end
  local entry = redis.call('HMGET', key, 'state', 'claim')
  return entry[1] and not (entry[1] == 'intent' and entry[2] == claim)
end
local function delivered(key, digest, attempts, retention, claim)
  if claim ~= '' then
    local entry = redis.call('HMGET', key, 'state', 'fingerprint')
    if entry[1] == 'delivered' and entry[2] == digest then
      return 1  -- this very write, run earlier by a Redis whose reply the client missed
    end
  end
  if superseded(key, claim) then
    return 0
  end
  redis.call('HSET', key, 'state', 'delivered', 'fingerprint', digest, 'attempts', attempts)
  redis.call('HDEL', key, 'claim')
  redis.call('PEXPIRE', key, retention)
  return 1
end
local function withdraw(key, claim)
  if superseded(key, claim) then
    return 0
  end
  redis.call('DEL', key)
  return 1
end
"""

# Many entries in one command (one round trip, one reply to parse). ARGV[1] is the retention,
# ARGV[2] the claim ('' for none), ARGV[2 + i] the fingerprint of KEYS[i].
BEGIN_MANY = (
    STEPS
    + """
local found = {}
for i, key in ipairs(KEYS) do
  found[i] = begin(key, ARGV[i + 2], ARGV[2], ARGV[1])
end
return found
"""
)

# ARGV[1] is the retention; ARGV[2] the attempts of every key, then the fingerprint of each
# key (ARGV[2 + i] for KEYS[i]); or ARGV[2] is '' and fingerprint and attempts follow for each
# key (ARGV[1 + 2 * i], ARGV[2 + 2 * i]). The records of a call share their attempts, so the
# first form is the usual one: a third fewer arguments to send.
DELIVERED_MANY = (
    STEPS
    + """
local shared = ARGV[2]
for i, key in ipairs(KEYS) do
  if shared ~= '' then
    delivered(key, ARGV[2 + i], shared, ARGV[1], '')
  else
    delivered(key, ARGV[1 + 2 * i], ARGV[2 + 2 * i], ARGV[1], '')
  end
end
return #KEYS
"""
)

# Every transactional begin runs under the tenant's lease: KEYS[3] is the lock, ARGV[4] the
# owner, ARGV[5] the TTL in ms. A lock that is no longer the caller's ends the script with
# {'lost'} before anything is written; otherwise the lease is renewed in the same step.
LEASE_RENEW = """
if redis.call('GET', KEYS[3]) ~= ARGV[4] then
  return {'lost'}
end
redis.call('PEXPIRE', KEYS[3], ARGV[5])
"""

# A transactional record's begin, under its tenant's lease, in one atomic step:
# 1. the epoch is the one the caller knows (else the verdict of EPOCH_LUA);
# 2. the lease is still the caller's ({'lost'} otherwise), and is renewed;
# 3. the previous call's result is recorded (its write rides on this round trip);
# 4. the calling marker is cleared if no call of the holder can still be running, and set
#    again when this record is to be sent;
# 5. the record's entry is looked up / its intent written.
# 6. whether a waiter has marked the lock wanted (see service.state.locks) is read.
# KEYS: epoch, quarantine, lock, calling, previous record's entry, this record's entry, wanted.
# ARGV: known epoch, fresh epoch, quarantine ms, owner, ttl ms, fence, quiet ('1'/'0'),
# retention, previous result ('-' none, '' withdraw, else its attempts: delivered), previous
# fingerprint, previous claim, claim, fingerprint.
# Returns an epoch verdict, {'lost'}, or {'begun', previous written (1/0), found or nil,
# wanted (1/0)}.
SERIAL_BEGIN = (
    EPOCH_CHECK_LUA
    + STEPS
    + LEASE_RENEW
    + """
local previous = 1
if ARGV[9] == '' then
  previous = withdraw(KEYS[5], ARGV[11])
elseif ARGV[9] ~= '-' then
  previous = delivered(KEYS[5], ARGV[10], ARGV[9], ARGV[8], ARGV[11])
end
if ARGV[7] == '1' then
  redis.call('DEL', KEYS[4])
end
local found = begin(KEYS[6], ARGV[13], ARGV[12], ARGV[8])
if not found then
  redis.call('HSET', KEYS[6], 'tried', intent_at)
  redis.call('SET', KEYS[4], ARGV[6])
end
return {'begun', previous, found, redis.call('EXISTS', KEYS[7])}
"""
)

# An array's begin under its tenant's lease, in one atomic step: steps 1, 2, 4 and 5 of
# SERIAL_BEGIN for every record of the array (no previous result rides on it: the caller
# writes those first, by WRITE_RESULTS). The calling marker is set when any record is to be
# sent.
# KEYS: epoch, quarantine, lock, calling, then each record's entry.
# ARGV: known epoch, fresh epoch, quarantine ms, owner, ttl ms, fence, quiet ('1'/'0'),
# retention, then each record's claim and fingerprint (ARGV[7 + 2i], ARGV[8 + 2i]).
# Returns an epoch verdict, {'lost'}, or {'begun', {found or false, one per record}}.
SERIAL_BEGIN_MANY = (
    EPOCH_CHECK_LUA
    + STEPS
    + LEASE_RENEW
    + """
if ARGV[7] == '1' then
  redis.call('DEL', KEYS[4])
end
local found = {}
local sending = false
for i = 5, #KEYS do
  local n = i - 4
  found[n] = begin(KEYS[i], ARGV[8 + 2 * n], ARGV[7 + 2 * n], ARGV[8])
  if not found[n] then
    redis.call('HSET', KEYS[i], 'tried', intent_at)
    sending = true
  end
end
if sending then
  redis.call('SET', KEYS[4], ARGV[6])
end
return {'begun', found}
"""
)

# Calls' results on their own (no next record's begin carries them). KEYS: lock, calling, then
# each record's entry. ARGV: owner, quiet ('1'/'0'), retention, then for each entry its
# result ('' withdraw, else attempts: delivered), fingerprint and claim (ARGV[1 + 3i] ...).
# The calling marker is cleared only by the lock's owner. Returns 1 written or 0 superseded,
# one per entry.
WRITE_RESULTS = (
    STEPS
    + """
local written = {}
for i = 3, #KEYS do
  local n = i - 2
  local result, digest, claim = ARGV[1 + 3 * n], ARGV[2 + 3 * n], ARGV[3 + 3 * n]
  if result == '' then
    written[n] = withdraw(KEYS[i], claim)
  else
    written[n] = delivered(KEYS[i], digest, result, ARGV[3], claim)
  end
end
if ARGV[2] == '1' and redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
return written
"""
)


# Before a transactional call that is not the first of its records' intents (a retry, a part of
# a split array), under the tenant's lease: each entry that is still its claim's intent records
# the call's start in ``tried`` (Redis's clock, ms), so ``ledger resolve --not-delivered`` waits
# for this call, not only the first. KEYS: lock, then each record's entry. ARGV: owner, ttl ms,
# then each record's claim. A lock that is no longer the caller's returns {'lost'} having written
# nothing (no call may start); otherwise the lease is renewed and {'noted'} returned.
NOTE_ATTEMPTS = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {'lost'}
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local now = redis.call('TIME')
local tried = now[1] .. string.format('%03d', math.floor(tonumber(now[2]) / 1000))
for i = 2, #KEYS do
  local entry = redis.call('HMGET', KEYS[i], 'state', 'claim')
  if entry[1] == 'intent' and entry[2] == ARGV[i + 1] then
    redis.call('HSET', KEYS[i], 'tried', tried)
  end
end
return {'noted'}
"""


# The operator's verdict on an intent (``ledger resolve``). KEYS: the entry. ARGV: 'delivered'
# or 'not_delivered', the retention. Only an intent is touched; returns the state found (nil for
# no entry). A delivered verdict drops the claim, so a writer still holding it cannot overwrite.
RESOLVE = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'intent' then
  return state
end
if ARGV[1] == 'delivered' then
  redis.call('HSET', KEYS[1], 'state', 'delivered')
  redis.call('HDEL', KEYS[1], 'claim')
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
return state
"""
