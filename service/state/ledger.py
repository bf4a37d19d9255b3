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

An operator resolves an intent by hand after checking Sage (``sagebridge ledger resolve``):
:meth:`Ledger.resolve` turns it into ``delivered`` (a replay is answered without a call) or
removes it (a replay is sent). Only an intent can be resolved: a delivered entry is a fact the
Cloud Connector stated, and an unknown one holds nothing to resolve.

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

from service.errors import EpochMovedError, LeaseLost
from service.state.epoch import Epoch, moved
from service.state.keys import KeysUnder
from service.state.ledger_scripts import (
    BEGIN_MANY,
    DELIVERED_MANY,
    NOTE_ATTEMPTS,
    RESOLVE,
    SERIAL_BEGIN,
    SERIAL_BEGIN_MANY,
    WRITE_RESULTS,
)
from service.state.locks import Guard
from service.state.unavailable import speaks_state
from service.tenants import TenantKey


class EntryState(StrEnum):
    """What the ledger knew of an ``event_id`` when a record was begun."""

    NEW = "new"
    """No trace: go ahead (an intent has now been written)."""
    DELIVERED = "delivered"
    """Already delivered with this data: answer SUCCESS without calling."""
    IN_DOUBT = "in_doubt"
    """An earlier attempt was sent and never answered: report unknown_outcome."""
    CONFLICT = "conflict"
    """Seen before with different data: refuse."""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """The ledger's answer for one record: its state, and the calls an earlier attempt made."""

    state: EntryState
    attempts: int = 0


_NEW = LedgerEntry(EntryState.NEW)
"""Shared: most entries of a poll are new, and a frozen dataclass is slow to build."""


@dataclass(frozen=True, slots=True)
class ResultToWrite:
    """A call's result still to be written: ``delivered`` after SUCCESS, else the intent is
    withdrawn (the call was refused or never sent). ``claim`` is the intent's claim: the write
    happens only while the entry is still that intent (see :class:`Begun`)."""

    tenant: TenantKey
    event_id: str
    digest: str
    attempts: int
    delivered: bool
    claim: str = ""


@dataclass(frozen=True, slots=True)
class Begun:
    """A guarded begin ran: the record's ``entry``, and whether the previous record's result
    was written (``False``: another process had meanwhile reported that record in doubt, so
    its verdict stands and ours is not given)."""

    entry: LedgerEntry
    previous_written: bool
    wanted: bool = True
    """Another replica waits for the tenant's lock (see :mod:`service.state.locks`); ``True``
    when that is not known."""


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry as an operator sees it (``ledger show``): ``in_doubt`` or ``delivered``, the
    calls made (``None`` for an intent: written before its calls, it does not count them), and
    how long it is kept. The entry holds no time of its own; its expiry is renewed at each
    write, so it was last written one retention period before it expires."""

    state: str
    attempts: int | None
    expires_in_s: float
    attempted_at: float | None = None
    """For an intent: when it was written, just before the first attempt (Unix seconds, Redis's
    clock); ``None`` for entries written before intents kept it."""
    last_attempt_at: float | None = None
    """For a transactional intent: when its latest attempt began (Unix seconds, Redis's clock);
    ``None`` where attempts were not recorded (master data, an earlier release's intents)."""


def fingerprint(record: dict[str, Any]) -> str:
    """Stable digest of a record's content (key order does not matter)."""
    return hashlib.blake2b(
        orjson.dumps(record, option=orjson.OPT_SORT_KEYS), digest_size=16
    ).hexdigest()


def entry_from(found: Any, digest: str) -> LedgerEntry:
    """What a ``begin`` step found ({state, fingerprint, attempts}, or nothing), as an entry."""
    if not found:
        return _NEW
    state, seen_digest, attempts = (v.decode() if isinstance(v, bytes) else v for v in found)
    if seen_digest != digest:
        return LedgerEntry(EntryState.CONFLICT)
    if state == "delivered":
        return LedgerEntry(EntryState.DELIVERED, int(attempts or 0))
    return LedgerEntry(EntryState.IN_DOUBT, int(attempts or 0))


def delivered_args(
    retention_ms: int, entries: list[tuple[TenantKey, str, str, int]]
) -> list[str | int]:
    """``DELIVERED_MANY``'s arguments for (tenant, event_id, digest, attempts): the attempts
    once when every record shares them (the records of one call do), else with each digest."""
    attempts = entries[0][3]
    if all(entry[3] == attempts for entry in entries):
        return [retention_ms, attempts, *(entry[2] for entry in entries)]
    args: list[str | int] = [retention_ms, ""]
    for _, _, digest, made in entries:
        args += [digest, made]
    return args


def stored_entry(
    state: bytes | None, attempts: bytes | None, at: bytes | None, tried: bytes | None, ttl_ms: int
) -> StoredEntry | None:
    """An entry's fields as an operator sees them (``None``: no entry)."""
    if state is None:
        return None
    if state == b"delivered":
        return StoredEntry("delivered", int(attempts or 0), max(0, ttl_ms) / 1000)
    attempted_at = None if at is None else int(at) / 1000
    last_attempt_at = None if tried is None else int(tried) / 1000
    return StoredEntry("in_doubt", None, max(0, ttl_ms) / 1000, attempted_at, last_attempt_at)


class Ledger:
    def __init__(self, redis: Redis, prefix: str, retention_s: float, epoch: Epoch) -> None:
        self._redis = redis
        self._prefix = prefix
        self._epoch = epoch
        self._retention_ms = int(retention_s * 1000)
        self._begin_many = redis.register_script(BEGIN_MANY)
        self._delivered_many = redis.register_script(DELIVERED_MANY)
        self._serial_begin = redis.register_script(SERIAL_BEGIN)
        self._serial_begin_many = redis.register_script(SERIAL_BEGIN_MANY)
        self._write_results = redis.register_script(WRITE_RESULTS)
        self._resolve = redis.register_script(RESOLVE)
        self._note_attempts = redis.register_script(NOTE_ATTEMPTS)
        self.retention_s = retention_s
        self._keys = KeysUnder(prefix, "ledger")

    def _key(self, tenant: TenantKey, event_id: str) -> str:
        return self._keys.key(tenant, event_id)

    @speaks_state
    async def begin_guarded(
        self,
        guard: Guard,
        tenant: TenantKey,
        event_id: str,
        digest: str,
        *,
        claim: str,
        after: ResultToWrite | None = None,
    ) -> Begun:
        """:meth:`begin_many` for one transactional record, under its tenant's lease (see
        ``SERIAL_BEGIN``): raises :class:`LeaseLost` or :class:`EpochMovedError`, having
        written nothing, if the lease or the epoch is not what the caller holds.

        ``after`` is the previous call's result, written in the same step: once this intent
        exists, the previous record's result is in the ledger, so a crash can never leave two
        records of one lane in doubt — and recording it costs no round trip of its own."""
        entry_key = self._key(tenant, event_id)
        previous_key = entry_key if after is None else self._key(after.tenant, after.event_id)
        previous: list[str | int] = ["-", "", ""]
        if after is not None:
            previous = [after.attempts if after.delivered else "", after.digest, after.claim]
        reply: Any = await self._serial_begin(
            keys=[
                *self._epoch.script_keys(),
                guard.keys.lock,
                guard.keys.calling,
                previous_key,
                entry_key,
                guard.keys.wanted,
            ],
            args=[
                *self._epoch.script_args(),
                guard.owner,
                guard.ttl_ms,
                guard.fence,
                "1" if guard.quiet else "0",
                self._retention_ms,
                *previous,
                claim,
                digest,
            ],
        )
        found = moved(reply)
        if found is not None:
            self._epoch.adopt(found)
            raise EpochMovedError(found.epoch)
        if reply[0] in (b"lost", "lost"):
            raise LeaseLost(event_id)
        return Begun(entry_from(reply[2], digest), bool(reply[1]), bool(reply[3]))

    @speaks_state
    async def begin_guarded_many(
        self, guard: Guard, tenant: TenantKey, records: list[tuple[str, str, str]]
    ) -> list[LedgerEntry]:
        """:meth:`begin_guarded` for the records of one array call, each (event_id, digest,
        claim), in one step under the tenant's lease (see ``SERIAL_BEGIN_MANY``): raises
        :class:`LeaseLost` or :class:`EpochMovedError`, having written nothing, if the lease or
        the epoch is not what the caller holds. No previous result rides on it: the caller
        writes an array's results with :meth:`write_results`."""
        args: list[str | int] = [
            *self._epoch.script_args(),
            guard.owner,
            guard.ttl_ms,
            guard.fence,
            "1" if guard.quiet else "0",
            self._retention_ms,
        ]
        for _, digest, claim in records:
            args += [claim, digest]
        reply: Any = await self._serial_begin_many(
            keys=[
                *self._epoch.script_keys(),
                guard.keys.lock,
                guard.keys.calling,
                *(self._key(tenant, event_id) for event_id, _, _ in records),
            ],
            args=args,
        )
        found = moved(reply)
        if found is not None:
            self._epoch.adopt(found)
            raise EpochMovedError(found.epoch)
        if reply[0] in (b"lost", "lost"):
            raise LeaseLost(records[0][0] if records else "")
        rows = reply[1]
        return [entry_from(row, digest) for (_, digest, _), row in zip(records, rows, strict=True)]

    @speaks_state
    async def note_attempts(
        self, guard: Guard, tenant: TenantKey, records: list[tuple[str, str]]
    ) -> None:
        """Record that a later call (not their intents' first) with these (event_id, claim)
        starts now (``NOTE_ATTEMPTS``); :class:`LeaseLost` if the lease is gone: no call."""
        reply: Any = await self._note_attempts(
            keys=[guard.keys.lock, *(self._key(tenant, event_id) for event_id, _ in records)],
            args=[guard.owner, guard.ttl_ms, *(claim for _, claim in records)],
        )
        if reply[0] in (b"lost", "lost"):
            raise LeaseLost(records[0][0] if records else "")

    @speaks_state
    async def write_results(self, results: list[ResultToWrite], guard: Guard) -> list[bool]:
        """Write calls' results on their own (when no next record's begin carries them), in one
        step; clear the calling marker if ``guard.quiet`` and the lease is still the caller's.
        One ``written`` per result, in order: ``False`` if the entry was superseded (another
        process reported it in doubt meanwhile)."""
        args: list[str | int] = [
            guard.owner,
            "1" if guard.quiet else "0",
            self._retention_ms,
        ]
        for result in results:
            verdict = result.attempts if result.delivered else ""
            args += [verdict, result.digest, result.claim]
        written = await self._write_results(
            keys=[
                guard.keys.lock,
                guard.keys.calling,
                *(self._key(r.tenant, r.event_id) for r in results),
            ],
            args=args,
        )
        return [bool(w) for w in written]

    @speaks_state
    async def begin_many(
        self, keys: list[tuple[TenantKey, str, str]], *, claim: str = ""
    ) -> list[LedgerEntry]:
        """Look each (tenant, event_id, digest) up and, if it is unknown (or an intent under
        ``claim``), write its intent, all in one command: a crash before its answer leaves a
        trace.

        One script over many keys: on Redis Cluster the keys would have to share a slot, so
        the ledger expects a standalone Redis (or a proxy that keeps them together)."""
        if not keys:
            return []
        rows = await self._begin_many(
            keys=self._keys.keys(keys),
            args=[self._retention_ms, claim, *(digest for _, _, digest in keys)],
        )
        return [entry_from(row, digest) for (_, _, digest), row in zip(keys, rows, strict=True)]

    @speaks_state
    async def delivered_many(self, entries: list[tuple[TenantKey, str, str, int]]) -> None:
        """Record (tenant, event_id, digest, attempts) as delivered, in one command."""
        if not entries:
            return
        args = delivered_args(self._retention_ms, entries)
        await self._delivered_many(keys=self._keys.keys(entries), args=args)

    @speaks_state
    async def withdraw_many(self, keys: list[tuple[TenantKey, str]]) -> None:
        """Forget intents of (tenant, event_id) whose records were refused: fixed data may come
        again under the same ``event_id``."""
        await self._redis.delete(*(self._key(tenant, event_id) for tenant, event_id in keys))

    @speaks_state
    async def look(self, tenant: TenantKey, event_id: str) -> StoredEntry | None:
        """What the ledger holds for the event, or ``None``; reads only."""
        entry_key = self._key(tenant, event_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hmget(entry_key, "state", "attempts", "at", "tried")
            pipe.pttl(entry_key)
            (state, attempts, at, tried), ttl_ms = await pipe.execute()
        return stored_entry(state, attempts, at, tried, ttl_ms)

    @speaks_state
    async def resolve(self, tenant: TenantKey, event_id: str, *, delivered: bool) -> str | None:
        """Resolve an intent with the operator's verdict; the state found before (``"intent"``
        when resolved, ``"delivered"`` or ``None`` when refused and nothing was written)."""
        found = await self._resolve(
            keys=[self._key(tenant, event_id)],
            args=["delivered" if delivered else "not_delivered", self._retention_ms],
        )
        return found.decode() if isinstance(found, bytes) else found
