"""What the serial lane needs of the tenant locks and the ledger, as protocols.

:class:`~service.state.locks.TenantLocks` and :class:`~service.state.ledger.Ledger` are the
Redis-backed implementations; in-memory ones that keep the same contracts make the turn's
decisions testable without Redis (``tests/support/memory_state.py``). Both raise
:class:`~service.errors.StateUnavailable` when their store fails, :class:`~service.errors.LeaseLost`
or :class:`~service.errors.EpochMovedError` from a step that found the lease gone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar

from service.state.ledger import Begun, LedgerEntry, ResultToWrite
from service.state.locks import Guard, Lease
from service.tenants import TenantKey

Done = TypeVar("Done")


class SerialLocks(Protocol):
    """One lock per tenant; the owner of every :class:`Lease` it grants."""

    async def acquire(self, tenant: TenantKey, wait_s: float) -> Lease | None: ...

    async def release(self, lease: Lease, *, quiet: bool) -> bool: ...

    def kept_alive(self, lease: Lease) -> AbstractAsyncContextManager[Lease]: ...

    def guard(self, lease: Lease, *, quiet: bool) -> Guard: ...

    async def under_lease(
        self, lease: Lease, step: Callable[[Guard], Awaitable[Done]], *, quiet: bool
    ) -> Done: ...


class SerialLedger(Protocol):
    """The ledger steps a transactional record goes through, each under the tenant's lease."""

    async def begin_guarded(
        self,
        guard: Guard,
        tenant: TenantKey,
        event_id: str,
        digest: str,
        *,
        claim: str,
        after: ResultToWrite | None = None,
    ) -> Begun: ...

    async def begin_guarded_many(
        self, guard: Guard, tenant: TenantKey, records: list[tuple[str, str, str]]
    ) -> list[LedgerEntry]: ...

    async def note_attempts(
        self, guard: Guard, tenant: TenantKey, records: list[tuple[str, str]]
    ) -> None: ...

    async def write_results(self, results: list[ResultToWrite], guard: Guard) -> list[bool]: ...
