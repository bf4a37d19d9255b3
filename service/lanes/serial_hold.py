"""The serial lane's bookkeeping for one hold: an acquisition of a tenant's lock while it is used.

Every ledger write under a hold is guarded by the tenant's lock (:class:`Guard`): it runs only
while this process still holds the lease. A delivered record's result is not written at once:
it rides on the next record's ``begin``, or is written before the lock goes back
(:meth:`Bookkeeping.record_last`), and the record's answer waits for that write.

Redis trouble never leads to a call: before a call it means "wait and try again", after one it
means "retry the write" — the outcome is known, only its bookkeeping is pending.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Generic, TypeVar

from redis.exceptions import RedisError

from service.answers.outcomes import Outcome
from service.errors import EpochMovedError, LeaseLost
from service.lanes import Delivery, Sink, T
from service.state.ledger import Guard, Ledger, LedgerEntry, ResultToWrite
from service.state.locks import Lease, TenantLocks, process_token

log = logging.getLogger("service.lanes.serial")  # one logger for the whole serial lane

Written = TypeVar("Written")


@dataclass(frozen=True, slots=True)
class Unrecorded(Generic[T]):
    """A call whose result is not in the ledger yet, and the answer that waits for it."""

    settlement: ResultToWrite
    ticket: T
    outcome: Outcome


@dataclass(slots=True)
class Hold(Generic[T]):
    """One acquisition of a tenant's lock, while it is being used."""

    lease: Lease
    settled: bool
    """No call made by this tenant's holders can still be running at the Connector."""
    unrecorded: Unrecorded[T] | None = None


class Bookkeeping(Generic[T]):
    """The ledger writes, answers and lock release of the serial lane's holds, and whether
    Redis is reachable."""

    def __init__(
        self,
        ledger: Ledger,
        locks: TenantLocks,
        sink: Sink[T],
        on_dropped: Callable[[Sequence[T]], None],
        *,
        settle_s: float,
        redis_retry_s: float,
    ) -> None:
        self._ledger = ledger
        self._locks = locks
        self._sink = sink
        self._on_dropped = on_dropped
        self._settle_s = settle_s
        self._redis_retry_s = redis_retry_s
        self._claim_prefix = process_token()
        self._claims = itertools.count()
        self.redis_ok = True
        """False while Redis is unreachable (the lane is paused)."""

    async def begin(self, hold: Hold[T], delivery: Delivery[T], digest: str) -> LedgerEntry | None:
        """The guarded ledger begin; writes the previous record's result and sends its answer.
        ``None`` if it could not run (Redis down, lease lost, epoch moved): nothing written."""
        self._claim(delivery)
        previous = hold.unrecorded
        begun = await self._under_lease(
            hold,
            lambda guard: self._ledger.begin_guarded(
                guard,
                delivery.tenant.key,
                delivery.event_id,
                digest,
                claim=delivery.claim,
                after=previous.settlement if previous is not None else None,
            ),
        )
        if begun is None:
            return None
        if previous is not None:
            hold.unrecorded = None
            self._deliver_unrecorded(previous, begun.previous_written)
        return begun.entry

    async def begin_array(
        self, hold: Hold[T], deliveries: Sequence[Delivery[T]], digests: Sequence[str]
    ) -> list[LedgerEntry] | None:
        """The guarded begin of every record of one array call, in one step (the hold's last
        one-record result, if any, is written first). ``None`` if it could not run: nothing
        written."""
        await self.record_last(hold)
        for delivery in deliveries:
            self._claim(delivery)
        tenant = deliveries[0].tenant.key
        pairs = zip(deliveries, digests, strict=True)
        records = [(d.event_id, digest, d.claim) for d, digest in pairs]
        return await self._under_lease(
            hold, lambda guard: self._ledger.begin_guarded_many(guard, tenant, records)
        )

    async def settle(self, settlement: ResultToWrite, hold: Hold[T]) -> bool:
        """Record a result after the call. Redis trouble here means retry the write, never the
        call: the outcome is known, only its bookkeeping is pending. Never raises RedisError.
        ``False`` if another process had reported the record in doubt meanwhile."""
        [written] = await self.settle_many([settlement], hold)
        return written

    async def settle_many(self, settlements: list[ResultToWrite], hold: Hold[T]) -> list[bool]:
        """:meth:`settle` for the records of one array call, in one step."""
        while True:
            try:
                written = await self._ledger.settle_many(settlements, self._guard(hold))
            except RedisError as exc:
                await self.redis_down("ledger write", exc)
                continue
            self.redis_ok = True
            return written

    async def record_last(self, hold: Hold[T]) -> None:
        """Write the hold's last result (no next begin carries it) and send its answer."""
        unrecorded = hold.unrecorded
        if unrecorded is None:
            return
        hold.unrecorded = None
        written = await self.settle(unrecorded.settlement, hold)
        self._deliver_unrecorded(unrecorded, written)

    async def settle_period(self, hold: Hold[T]) -> None:
        """After an unknown outcome: no call for ``settle_s``, the lock kept (and renewed)."""
        log.warning(
            "unknown outcome: no call for this tenant during the settle period",
            extra={"tenant": hold.lease.tenant, "settle_s": self._settle_s},
        )
        await asyncio.sleep(self._settle_s)
        hold.settled = hold.lease.usable()  # a lease lost meanwhile: the next holder waits

    def answer(self, delivery: Delivery[T], outcome: Outcome) -> None:
        """An answer that waits for no ledger write."""
        self._sink([(delivery.ticket, outcome)])

    def drop(self, ticket: T) -> None:
        """Give up a record unanswered: withdrawn, or answered by another replica."""
        self._on_dropped([ticket])

    async def release(self, lease: Lease, *, settled: bool) -> None:
        # On Redis trouble the lock expires by itself; nobody else can take it meanwhile.
        with suppress(RedisError):
            await self._locks.release(lease, settled=settled)

    async def redis_down(self, step: str, exc: Exception) -> None:
        if self.redis_ok:
            log.error(
                "Redis unreachable: serial lane paused",
                extra={"step": step, "error": type(exc).__name__},
            )
        self.redis_ok = False
        await asyncio.sleep(self._redis_retry_s)

    def _deliver_unrecorded(self, unrecorded: Unrecorded[T], written: bool) -> None:
        ticket = unrecorded.ticket
        if written:
            self._sink([(ticket, unrecorded.outcome)])
        else:
            log.warning(
                "another replica already reported this record in doubt; its verdict stands",
                extra={"event_id": unrecorded.settlement.event_id},
            )
            self._on_dropped([ticket])

    def deliver_after_write(self, unrecorded: Unrecorded[T], written: bool) -> None:
        """Send an answer whose ledger write has run: dropped if another process had
        reported the record in doubt meanwhile (its verdict stands)."""
        self._deliver_unrecorded(unrecorded, written)

    def _claim(self, delivery: Delivery[T]) -> None:
        if not delivery.claim:
            delivery.claim = f"{self._claim_prefix}:{next(self._claims)}"

    async def _under_lease(
        self, hold: Hold[T], step: Callable[[Guard], Awaitable[Written]]
    ) -> Written | None:
        """Run a guarded begin; the lease is renewed by it. ``None`` if it could not run
        (Redis down, lease lost, epoch moved): nothing was written, nothing is to be sent."""
        lease = hold.lease
        sent = time.monotonic()
        try:
            done = await step(self._guard(hold))
        except RedisError as exc:  # nothing was sent; the previous write is redone
            await self.redis_down("ledger", exc)
            return None
        except (LeaseLost, EpochMovedError):
            lease.lost = True
            log.error(
                "tenant lock lost before a call; re-acquiring", extra={"tenant": lease.tenant}
            )
            return None
        self.redis_ok = True
        lease.valid_until = max(lease.valid_until, sent + self._locks.ttl_ms / 1000)
        return done

    def _guard(self, hold: Hold[T]) -> Guard:
        lease = hold.lease
        return Guard(
            self._locks.keys(lease.tenant),
            lease.owner,
            self._locks.ttl_ms,
            lease.fence,
            hold.settled,
        )
