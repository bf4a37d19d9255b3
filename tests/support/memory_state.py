"""In-memory stand-ins for the serial lane's state: the tenant locks and the ledger, keeping the
Redis-backed ones' contracts (``tests/integration/state/test_state_contracts.py`` runs the same
cases against both), so the serial turn's decisions are tested in milliseconds without Redis.

They share one dict of "keys" as the scripts share Redis: the ledger checks the lock's owner
and sets the calling marker by the key names the locks hand out in a :class:`Guard`. Neither
expires entries or models the epoch: a Redis that loses data is the Redis-backed tests' concern.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from service.errors import LeaseLost
from service.state.ledger import Begun, LedgerEntry, ResultToWrite, entry_from
from service.state.locks import Guard, Lease, LeaseKeys, LeaseOwner
from service.tenants import TenantKey


@dataclass
class _Entry:
    state: str
    fingerprint: str
    attempts: str
    claim: str = ""
    tries: int = 0
    """Calls noted after the intent's first (``tried`` in Redis)."""


@dataclass
class MemoryRedis:
    """What the scripts would keep in Redis: lock owners, calling markers, ledger entries."""

    values: dict[str, str] = field(default_factory=dict)
    entries: dict[str, _Entry] = field(default_factory=dict)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    """Lock owners and fences, unique across every stand-in sharing this store."""


class MemoryLocks(LeaseOwner):
    """:class:`~service.state.locks.TenantLocks` without Redis: no waiting, no expiry by itself
    (a test takes a lock over with :meth:`take_over`)."""

    def __init__(self, store: MemoryRedis, ttl_s: float = 30) -> None:
        self.store = store
        self.ttl_ms = max(1, int(ttl_s * 1000))

    def keys(self, tenant: TenantKey) -> LeaseKeys:
        where = f"{tenant[0]}:{tenant[1]}"
        return LeaseKeys(f"lock:{where}", f"calling:{where}", f"wanted:{where}")

    async def try_acquire(self, tenant: TenantKey) -> Lease | None:
        keys = self.keys(tenant)
        if keys.lock in self.store.values:
            return None
        return self._grant(tenant, keys)

    def _grant(self, tenant: TenantKey, keys: LeaseKeys) -> Lease:
        owner = f"memory:{next(self.store.counter)}"
        self.store.values[keys.lock] = owner
        occupied = keys.calling in self.store.values
        return Lease(
            tenant, owner, next(self.store.counter), time.monotonic() + self.ttl_ms / 1000, occupied
        )

    async def acquire(self, tenant: TenantKey, wait_s: float) -> Lease | None:
        """One attempt; one that finds the lock taken marks it wanted, as a waiter does."""
        keys = self.keys(tenant)
        if keys.lock in self.store.values:
            self.store.values[keys.wanted] = "1"
            return None
        return self._grant(tenant, keys)

    async def release(self, lease: Lease, *, quiet: bool) -> bool:
        keys = self.keys(lease.tenant)
        if self.store.values.get(keys.lock) != lease.owner:
            return False
        del self.store.values[keys.lock]
        self.store.values.pop(keys.wanted, None)
        if quiet:
            self.store.values.pop(keys.calling, None)
        return True

    def take_over(self, tenant: TenantKey) -> None:
        """Another replica holds the lock now (ours expired meanwhile)."""
        self.store.values[self.keys(tenant).lock] = "another-replica"

    @asynccontextmanager
    async def kept_alive(self, lease: Lease) -> AsyncIterator[Lease]:
        yield lease


class MemoryLedger:
    """The serial lane's part of :class:`~service.state.ledger.Ledger` without Redis: the same
    steps as its scripts (``service/state/ledger_scripts.py``), one Python function each."""

    def __init__(self, store: MemoryRedis) -> None:
        self.store = store

    def key(self, tenant: TenantKey, event_id: str) -> str:
        return f"ledger:{tenant[0]}:{tenant[1]}:{event_id}"

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
        self._check_lease(guard, event_id)
        previous = True if after is None else self._write(after)
        found = self._under_lease(guard, [(self.key(tenant, event_id), claim, digest)])
        return Begun(found[0], previous, guard.keys.wanted in self.store.values)

    async def begin_guarded_many(
        self, guard: Guard, tenant: TenantKey, records: list[tuple[str, str, str]]
    ) -> list[LedgerEntry]:
        self._check_lease(guard, records[0][0] if records else "")
        return self._under_lease(
            guard,
            [(self.key(tenant, event_id), claim, digest) for event_id, digest, claim in records],
        )

    async def note_attempts(
        self, guard: Guard, tenant: TenantKey, records: list[tuple[str, str]]
    ) -> None:
        self._check_lease(guard, records[0][0] if records else "")
        for event_id, claim in records:
            entry = self.store.entries.get(self.key(tenant, event_id))
            if entry is not None and (entry.state, entry.claim) == ("intent", claim):
                entry.tries += 1

    async def write_results(self, results: list[ResultToWrite], guard: Guard) -> list[bool]:
        written = [self._write(result) for result in results]
        if guard.quiet and self.store.values.get(guard.keys.lock) == guard.owner:
            self.store.values.pop(guard.keys.calling, None)
        return written

    def reported_in_doubt(self, tenant: TenantKey, event_id: str) -> None:
        """Another process read the intent (and so orphaned it), as a crash's successor does."""
        self.store.entries[self.key(tenant, event_id)].claim = ""

    def _check_lease(self, guard: Guard, event_id: str) -> None:
        if self.store.values.get(guard.keys.lock) != guard.owner:
            raise LeaseLost(event_id)

    def _under_lease(self, guard: Guard, rows: list[tuple[str, str, str]]) -> list[LedgerEntry]:
        if guard.quiet:
            self.store.values.pop(guard.keys.calling, None)
        found = [self._begin(key, claim, digest) for key, claim, digest in rows]
        if any(entry is None for entry in found):
            self.store.values[guard.keys.calling] = str(guard.fence)
        return [
            entry_from(entry, digest) for entry, (_, _, digest) in zip(found, rows, strict=True)
        ]

    def _begin(self, key: str, claim: str, digest: str) -> list[str] | None:
        entry = self.store.entries.get(key)
        if entry is not None and not (claim and entry.state == "intent" and entry.claim == claim):
            if entry.state == "intent":
                entry.claim = ""
            return [entry.state, entry.fingerprint, entry.attempts]
        self.store.entries[key] = _Entry("intent", digest, "0", claim)
        return None

    def _write(self, result: ResultToWrite) -> bool:
        key = self.key(result.tenant, result.event_id)
        entry = self.store.entries.get(key)
        if result.claim and entry is not None:
            if result.delivered and (entry.state, entry.fingerprint) == (
                "delivered",
                result.digest,
            ):
                return True  # this very write, run earlier
            if (entry.state, entry.claim) != ("intent", result.claim):
                return False  # superseded
        if result.delivered:
            self.store.entries[key] = _Entry("delivered", result.digest, str(result.attempts))
        else:
            self.store.entries.pop(key, None)
        return True
