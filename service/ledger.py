"""The ledger: what the Cloud Connector has already been sent, so nothing is sent twice.

Keyed by tenant and ``event_id``, each entry holds a fingerprint of the record (so the same
``event_id`` with different data is caught, not silently overwritten) and a state:

* ``intent`` — written *before* a call; if the process dies mid-call the entry stays, and a
  redelivered event finds an intent without a result: the call may or may not have reached
  Sage, so it is reported ``unknown_outcome`` for an operator to reconcile, never resent;
* ``delivered`` — the Cloud Connector answered SUCCESS; a redelivered event is answered from
  here without calling again.

A call that was refused or never sent removes the intent, so fixed data can be replayed.
Entries expire after the retention period.

An intent may carry a *claim*: a token its writer keeps while the record waits in memory. A
``begin`` whose reply was lost (Redis stalled past the client's timeout, then ran the script)
leaves an intent for a call that was never made; the same writer retrying with its claim finds
it is its own and goes ahead. Any other reader — a new process after a crash — has no claim
and still reads it as in doubt.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from redis.asyncio import Redis

from service.rediskeys import key

# The two steps every script below is made of. ``begin`` looks an entry up and, if it is unknown
# (or an intent under the caller's own non-empty claim), writes an intent; it returns
# {state, fingerprint, attempts} of what it found, or false (go ahead). ``delivered`` records a
# SUCCESS.
_STEPS = """
local function begin(key, digest, claim, retention)
  local entry = redis.call('HMGET', key, 'state', 'fingerprint', 'attempts', 'claim')
  if entry[1] and not (claim ~= '' and entry[1] == 'intent' and entry[4] == claim) then
    return {entry[1], entry[2], entry[3]}
  end
  redis.call('HSET', key, 'state', 'intent', 'fingerprint', digest, 'attempts', '0',
             'claim', claim)
  redis.call('PEXPIRE', key, retention)
  return false
end
local function delivered(key, digest, attempts, retention)
  redis.call('HSET', key, 'state', 'delivered', 'fingerprint', digest, 'attempts', attempts)
  redis.call('PEXPIRE', key, retention)
end
"""

# Many entries in one command (one round trip, one reply to parse). ARGV[1] is the retention,
# ARGV[2] the claim ('' for none), ARGV[2 + i] the fingerprint of KEYS[i].
_BEGIN_MANY = (
    _STEPS
    + """
local found = {}
for i, key in ipairs(KEYS) do
  found[i] = begin(key, ARGV[i + 2], ARGV[2], ARGV[1])
end
return found
"""
)

# ARGV[1] is the retention, then fingerprint and attempts for each key.
_DELIVERED_MANY = (
    _STEPS
    + """
for i, key in ipairs(KEYS) do
  delivered(key, ARGV[2 * i], ARGV[2 * i + 1], ARGV[1])
end
return #KEYS
"""
)

# Record the previous call's result (KEYS[1]) and begin the next record (KEYS[2]) atomically.
# ARGV: retention; the previous record's attempts ('' to withdraw its intent) and fingerprint;
# this record's claim and fingerprint.
_SETTLE_THEN_BEGIN = (
    _STEPS
    + """
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  delivered(KEYS[1], ARGV[3], ARGV[2], ARGV[1])
end
return begin(KEYS[2], ARGV[5], ARGV[4], ARGV[1])
"""
)


class Standing(StrEnum):
    NEW = "new"
    """No trace: go ahead (an intent has now been written)."""
    DELIVERED = "delivered"
    """Already delivered with this data: answer SUCCESS without calling."""
    IN_DOUBT = "in_doubt"
    """An earlier attempt was sent and never answered: report unknown_outcome."""
    CONFLICT = "conflict"
    """Seen before with different data: refuse."""


@dataclass(frozen=True, slots=True)
class Entry:
    standing: Standing
    attempts: int = 0


_NEW = Entry(Standing.NEW)
"""Shared: most entries of a poll are new, and a frozen dataclass is slow to build."""


@dataclass(frozen=True, slots=True)
class Settlement:
    """A call's result still to be written: ``delivered`` after SUCCESS, else the intent is
    withdrawn (the call was refused or never sent)."""

    tenant: tuple[str, str]
    event_id: str
    digest: str
    attempts: int
    delivered: bool


def fingerprint(record: dict[str, Any]) -> str:
    """Stable digest of a record's content (key order does not matter)."""
    return hashlib.blake2b(
        orjson.dumps(record, option=orjson.OPT_SORT_KEYS), digest_size=16
    ).hexdigest()


class Ledger:
    def __init__(self, redis: Redis, prefix: str, retention_s: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self._retention_ms = int(retention_s * 1000)
        self._begin_many = redis.register_script(_BEGIN_MANY)
        self._delivered_many = redis.register_script(_DELIVERED_MANY)
        self._settle_then_begin = redis.register_script(_SETTLE_THEN_BEGIN)

    def _key(self, tenant: tuple[str, str], event_id: str) -> str:
        return key(self._prefix, "ledger", tenant[0], tenant[1], event_id)

    async def begin(
        self,
        tenant: tuple[str, str],
        event_id: str,
        digest: str,
        *,
        claim: str = "",
        after: Settlement | None = None,
    ) -> Entry:
        """Look the event up; if unknown (or an intent under ``claim``), record the intent to
        send it (one atomic step).

        ``after`` is the previous call's result, written in the same step: once this intent
        exists, the previous record is settled, so a crash can never leave two records of one
        lane in doubt — and recording it costs no round trip of its own."""
        if after is None:
            [entry] = await self.begin_many([(tenant, event_id, digest)], claim=claim)
            return entry
        found = await self._settle_then_begin(
            keys=[self._key(after.tenant, after.event_id), self._key(tenant, event_id)],
            args=[
                self._retention_ms,
                after.attempts if after.delivered else "",
                after.digest,
                claim,
                digest,
            ],
        )
        return self._standing(found, digest)

    async def settle(self, settlement: Settlement) -> None:
        """Write a call's result on its own (when no next record's ``begin`` can carry it)."""
        if settlement.delivered:
            await self.delivered(
                settlement.tenant, settlement.event_id, settlement.digest, settlement.attempts
            )
        else:
            await self.withdraw(settlement.tenant, settlement.event_id)

    async def begin_many(
        self, keys: list[tuple[tuple[str, str], str, str]], *, claim: str = ""
    ) -> list[Entry]:
        """:meth:`begin` for many (tenant, event_id, digest) in one command: each unknown
        event gets its intent written, so a crash before its answer leaves a trace.

        One script over many keys: on Redis Cluster the keys would have to share a slot, so
        the ledger expects a standalone Redis (or a proxy that keeps them together)."""
        if not keys:
            return []
        rows = await self._begin_many(
            keys=[self._key(tenant, event_id) for tenant, event_id, _ in keys],
            args=[self._retention_ms, claim, *(digest for _, _, digest in keys)],
        )
        return [self._standing(row, digest) for (_, _, digest), row in zip(keys, rows, strict=True)]

    def _standing(self, found: Any, digest: str) -> Entry:
        if not found:
            return _NEW
        state, seen_digest, attempts = (v.decode() if isinstance(v, bytes) else v for v in found)
        if seen_digest != digest:
            return Entry(Standing.CONFLICT)
        if state == "delivered":
            return Entry(Standing.DELIVERED, int(attempts or 0))
        return Entry(Standing.IN_DOUBT, int(attempts or 0))

    async def delivered_many(self, entries: list[tuple[tuple[str, str], str, str, int]]) -> None:
        """Record (tenant, event_id, digest, attempts) as delivered, in one command."""
        if not entries:
            return
        args: list[str | int] = [self._retention_ms]
        for _, _, digest, attempts in entries:
            args += [digest, attempts]
        await self._delivered_many(
            keys=[self._key(tenant, event_id) for tenant, event_id, _, _ in entries], args=args
        )

    async def withdraw_many(self, keys: list[tuple[tuple[str, str], str]]) -> None:
        """Forget intents of (tenant, event_id) whose records were refused: fixed data may come
        again under the same ``event_id``."""
        await self._redis.delete(*(self._key(tenant, event_id) for tenant, event_id in keys))

    async def delivered(
        self, tenant: tuple[str, str], event_id: str, digest: str, attempts: int
    ) -> None:
        await self.delivered_many([(tenant, event_id, digest, attempts)])

    async def withdraw(self, tenant: tuple[str, str], event_id: str) -> None:
        """The call was refused or never sent: forget the intent so a fixed replay can go."""
        await self.withdraw_many([(tenant, event_id)])
