"""One hold: an acquisition of a tenant's lock while the serial lane uses it.

A hold knows two things the turns change only through its methods: whether a call made by this
tenant's holders may still be running at the Connector (:attr:`Hold.quiet`), and which results
are known but not yet in the ledger (:attr:`Hold.pending`). Every ledger write under a hold is
guarded by the tenant's lock: it runs only while this process still holds the lease.

A known result is not written at once: it rides on the next record's ``begin``, or is written
before the lock goes back (:meth:`Hold.write_pending`), and its answer waits for that write.
Redis trouble never leads to a call: before a call it means "wait and try again", after one it
means "retry the write" — the outcome is known, only its bookkeeping is pending.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from service.answers.outcomes import Outcome
from service.errors import EpochMovedError, LeaseLost, StateUnavailable
from service.lanes import Delivery, Sink, T
from service.lanes.serial.lookups import Lookups, no_lookups
from service.lanes.serial.ports import SerialLedger, SerialLocks
from service.state.ledger import LedgerEntry, ResultToWrite
from service.state.locks import Guard, Lease, process_token
from service.tenants import Tenant

log = logging.getLogger("service.lanes.serial")

Done = TypeVar("Done")


@dataclass(frozen=True, slots=True)
class Pending(Generic[T]):
    """A call's result not in the ledger yet, and the answer that waits for it."""

    result: ResultToWrite
    ticket: T
    outcome: Outcome


class Bookkeeping(Generic[T]):
    """What every hold of the lane shares: the ledger, the locks, where answers go, and
    whether Redis is reachable."""

    def __init__(
        self,
        ledger: SerialLedger,
        locks: SerialLocks,
        sink: Sink[T],
        on_dropped: Callable[[Sequence[T]], None],
        *,
        settle_s: float,
        redis_retry_s: float,
        lookups: Lookups | None = None,
    ) -> None:
        """``lookups``: see :class:`~service.lanes.serial.lookups.Lookups` (none: no look-ups)."""
        self.ledger = ledger
        self.locks = locks
        self.lookups = lookups if lookups is not None else no_lookups()
        self.settle_s = settle_s
        self._sink = sink
        self._on_dropped = on_dropped
        self._redis_retry_s = redis_retry_s
        self._claim_prefix = process_token()
        self._claims = itertools.count()
        self.redis_ok = True
        """False while Redis is unreachable (the lane is paused)."""
        self.stopping = asyncio.Event()
        """Set on shutdown: no call starts any more, and waits end early."""

    async def rest(self, seconds: float) -> bool:
        """Wait ``seconds``, or less if the lane is stopping: whether the whole wait passed."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)
        return not self.stopping.is_set()

    async def unless_stopping(self, work: Awaitable[Done]) -> Done | None:
        """``work``'s result, or ``None`` if the lane began stopping first (``work`` is then
        cancelled: use it only for waits that start nothing at the Connector)."""
        task: asyncio.Task[Any] = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
        if task.cancelled():
            return None
        result: Done = task.result()
        return result

    def answer(self, delivery: Delivery[T], outcome: Outcome) -> None:
        """An answer that waits for no ledger write."""
        self._sink([(delivery.ticket, outcome)])

    def drop(self, tickets: Sequence[T]) -> None:
        """Give up records unanswered: withdrawn, answered by another replica, or left to the
        partition's next owner on shutdown."""
        self._on_dropped(tickets)

    def after_write(self, pending: Pending[T], written: bool) -> None:
        """Send an answer whose ledger write has run: dropped if another process had reported
        the record in doubt meanwhile (its verdict stands)."""
        if written:
            self._sink([(pending.ticket, pending.outcome)])
            return
        log.warning(
            "another replica already reported this record in doubt; its verdict stands",
            extra={"event_id": pending.result.event_id},
        )
        self._on_dropped([pending.ticket])

    def claim(self, delivery: Delivery[T]) -> None:
        if not delivery.claim:
            delivery.claim = f"{self._claim_prefix}:{next(self._claims)}"

    def redis_back(self) -> None:
        """A Redis step succeeded: the lane is no longer paused for Redis."""
        self.redis_ok = True

    async def redis_down(self, step: str, exc: Exception) -> None:
        if self.redis_ok:
            # ``cause``: the Redis error behind it, by name only ("MaxConnectionsError" is a
            # full pool, not a Redis that is down); never its text, which may name the server.
            log.error(
                "Redis unreachable: serial lane paused",
                extra={"step": step, "error": type(exc).__name__, "cause": str(exc)},
            )
        self.redis_ok = False
        await self.rest(self._redis_retry_s)

    async def release(self, lease: Lease, *, quiet: bool) -> None:
        # On Redis trouble the lock expires by itself; nobody else can take it meanwhile.
        with suppress(StateUnavailable):
            await self.locks.release(lease, quiet=quiet)


class Hold(Generic[T]):
    """One acquisition of a tenant's lock, from the grant to the release."""

    def __init__(self, lease: Lease, books: Bookkeeping[T]) -> None:
        self._lease = lease
        self._books = books
        self._quiet = not lease.occupied
        self._pending: list[Pending[T]] = []
        self._wanted = True

    @property
    def lease(self) -> Lease:
        return self._lease

    @property
    def books(self) -> Bookkeeping[T]:
        return self._books

    @property
    def quiet(self) -> bool:
        """No call made by this tenant's holders can still be running at the Connector."""
        return self._quiet

    @property
    def pending(self) -> Sequence[Pending[T]]:
        return tuple(self._pending)

    @property
    def wanted(self) -> bool:
        """Another replica may be waiting for the lock: as the last begin found it (a lone
        record's begin reads the waiters' mark), ``True`` when not known."""
        return self._wanted

    async def wait_out_earlier_call(self, tenant: Tenant) -> None:
        """A lock granted while an earlier holder's call may still run: no call for the settle
        period, the lock kept (and renewed) — unless the records that call carried are found in
        Sage, which means it has ended (:meth:`Lookups.earlier_call_ended`)."""
        if self._quiet:
            return
        if await self._books.lookups.earlier_call_ended(tenant):
            log.warning(
                "an earlier holder's call is found in Sage: it has ended; no settle period",
                extra={"tenant": self._lease.tenant},
            )
            self._quiet = True
            return
        log.warning(
            "an earlier holder's call may still be running at the Cloud Connector; waiting the "
            "settle period before calling",
            extra={"tenant": self._lease.tenant, "settle_s": self._books.settle_s},
        )
        if await self._books.rest(self._books.settle_s):
            self._quiet = True

    def call_starting(self) -> None:
        self._quiet = False

    def calls_ended(self) -> None:
        """Every call of the turn has ended at the Connector."""
        self._quiet = True

    def keep(self, results: Sequence[Pending[T]]) -> None:
        """Known results, to be written by the next begin or before the release."""
        self._pending.extend(results)

    async def wait_settle_period(self) -> None:
        """After an unknown outcome: no call for the settle period, the lock kept (and renewed).
        A lease lost meanwhile leaves the hold loud: the next holder waits too."""
        log.warning(
            "unknown outcome: no call for this tenant during the settle period",
            extra={"tenant": self._lease.tenant, "settle_s": self._books.settle_s},
        )
        rested = await self._books.rest(self._books.settle_s)  # cut short only by a shutdown
        self._quiet = rested and self._lease.usable()

    async def begin(
        self, deliveries: Sequence[Delivery[T]], digests: Sequence[str]
    ) -> list[LedgerEntry] | None:
        """The guarded ledger begin of a turn's records, in one step; the pending results are
        written first (one of them rides on a lone record's begin) and answered. ``None`` if it
        could not run (Redis down, lease lost, epoch moved): nothing written."""
        for delivery in deliveries:
            self._books.claim(delivery)
        ledger, tenant = self._books.ledger, deliveries[0].tenant.key
        if len(deliveries) == 1 and len(self._pending) <= 1:
            [delivery], [digest] = deliveries, digests
            riding = self._pending[0] if self._pending else None
            after = riding.result if riding is not None else None
            begun = await self._guarded(
                lambda guard: ledger.begin_guarded(
                    guard, tenant, delivery.event_id, digest, claim=delivery.claim, after=after
                )
            )
            if begun is None:
                return None
            self._wanted = begun.wanted
            self._pending.clear()
            if riding is not None:
                self._books.after_write(riding, begun.previous_written)
            return [begun.entry]
        self._wanted = True
        await self.write_pending()
        records = [
            (d.event_id, digest, d.claim) for d, digest in zip(deliveries, digests, strict=True)
        ]
        return await self._guarded(lambda guard: ledger.begin_guarded_many(guard, tenant, records))

    async def note_attempt(self, deliveries: Sequence[Delivery[T]]) -> bool:
        """Record in their ledger entries that a later call (a retry, a split array's part)
        carrying ``deliveries`` starts now, before it starts: ``ledger resolve
        --not-delivered`` is timed from the latest. ``False`` if it could not be recorded
        (Redis down, lease lost): then the call must not start."""
        ledger, tenant = self._books.ledger, deliveries[0].tenant.key
        records = [(d.event_id, d.claim) for d in deliveries]
        noted = await self._guarded(
            lambda guard: _noted(ledger.note_attempts(guard, tenant, records))
        )
        return noted is not None

    async def write(self, results: list[ResultToWrite]) -> list[bool]:
        """Write results after a call. Redis trouble here means retry the write, never the
        call. One ``False`` per record another process had reported in doubt meanwhile."""
        while True:
            try:
                written = await self._books.ledger.write_results(results, self._guard())
            except StateUnavailable as exc:
                await self._books.redis_down("ledger write", exc)
                continue
            self._books.redis_back()
            return written

    async def write_pending(self) -> None:
        """Write the pending results (no next begin carries them) and send their answers."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        written = await self.write([p.result for p in pending])
        for each, landed in zip(pending, written, strict=True):
            self._books.after_write(each, landed)

    async def release(self) -> None:
        await self._books.release(self._lease, quiet=self._quiet and self._lease.usable())

    async def _guarded(self, step: Callable[[Guard], Awaitable[Done]]) -> Done | None:
        """Run a ledger step under the lease (the locks renew or lose it). ``None`` if it could
        not run (Redis down, lease lost, epoch moved): nothing was written."""
        try:
            done = await self._books.locks.under_lease(self._lease, step, quiet=self._quiet)
        except StateUnavailable as exc:  # nothing was sent; the pending write is redone
            await self._books.redis_down("ledger", exc)
            return None
        except (LeaseLost, EpochMovedError):
            log.error(
                "tenant lock lost before a call; re-acquiring", extra={"tenant": self._lease.tenant}
            )
            return None
        self._books.redis_back()
        return done

    def _guard(self) -> Guard:
        return self._books.locks.guard(self._lease, quiet=self._quiet)


async def _noted(step: Awaitable[None]) -> bool:
    """A step that returns nothing, as one whose success :meth:`Hold._guarded` can tell."""
    await step
    return True
