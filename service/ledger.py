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

# Look up many entries, writing an intent for each unknown one, in one command (one round
# trip, one reply to parse). KEYS are the entries; ARGV[1] is the retention, ARGV[2] the claim
# ('' for none), ARGV[2 + i] the fingerprint of KEYS[i]. Returns {state, fingerprint,
# attempts} or false (go ahead) per entry; an intent under the caller's own claim is false.
_BEGIN_MANY = """
local claim = ARGV[2]
local found = {}
for i, key in ipairs(KEYS) do
  local entry = redis.call('HMGET', key, 'state', 'fingerprint', 'attempts', 'claim')
  if entry[1] and not (claim ~= '' and entry[1] == 'intent' and entry[4] == claim) then
    found[i] = {entry[1], entry[2], entry[3]}
  else
    redis.call('HSET', key, 'state', 'intent', 'fingerprint', ARGV[i + 2], 'attempts', '0',
               'claim', claim)
    redis.call('PEXPIRE', key, ARGV[1])
    found[i] = false
  end
end
return found
"""

# KEYS are entries; ARGV[1] is the retention, then fingerprint and attempts for each key.
_DELIVERED_MANY = """
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, 'state', 'delivered', 'fingerprint', ARGV[2 * i], 'attempts',
             ARGV[2 * i + 1])
  redis.call('PEXPIRE', key, ARGV[1])
end
return #KEYS
"""


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

    def _key(self, tenant: tuple[str, str], event_id: str) -> str:
        return f"{self._prefix}:ledger:{tenant[0]}:{tenant[1]}:{event_id}"

    async def begin(
        self, tenant: tuple[str, str], event_id: str, digest: str, *, claim: str = ""
    ) -> Entry:
        """Look the event up; if unknown (or an intent under ``claim``), record the intent to
        send it (one atomic step)."""
        [entry] = await self.begin_many([(tenant, event_id, digest)], claim=claim)
        return entry

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
