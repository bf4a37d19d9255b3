"""Serial lane: transactional records, one call at a time per tenant, across all replicas.

Per tenant, records queue in arrival order (so one partition's records keep their offset order)
and one worker takes them one by one: wait for the tenant lock, begin in the ledger (which
writes the intent, checks and renews the lease in the same script), call, record the result.
Tenants have separate workers and locks, so they run in parallel; the batch lane never waits
behind this one.

"One at a time" is judged at the Cloud Connector, which ignores fencing headers and finishes a
request after its client gave up. So:

* a call starts only while the lease outlasts the call's own timeout plus a margin
  (:data:`~service.config.LEASE_MARGIN_S`): whoever holds the lock next, this call has ended
  at the client;
* a call whose outcome is unknown (timeout, dropped connection, 500/502/504, no envelope) may
  still be running at the Connector: it is reported ``unknown_outcome`` and never resent, and
  the tenant makes no further call for ``settle_s`` while this worker keeps the lock;
* a lock granted while an earlier holder's call may still be running (:attr:`Lease.occupied`:
  it died, stalled or lost its lease mid-call) is first held quietly for ``settle_s`` too.

Fail closed: any Redis error before the call means "wait and try again" — the lane never calls
without the lock. Only what proves a request was not processed (a refused connection, 429, 503
with the Connector's ERROR envelope) is retried.

A record that cannot be prepared (its fingerprint or encoding fails) is answered with an ERROR
of its own; an unexpected error never stops the tenant's worker, so one record cannot hold up
the invoices queued behind it.

A route with ``batch_max`` > 1 (its :class:`ArrayRule`) sends up to that many queued records of
one endpoint in one call, as one JSON array; still one call at a time per tenant
(:mod:`service.lanes.serial_array`).

This module schedules: one worker per tenant, the tenant lock's holds. One record's turn under a
hold is :mod:`service.lanes.serial_turn`, one array's :mod:`service.lanes.serial_array`; the
ledger writes, answers and lock release of a hold are :mod:`service.lanes.serial_hold`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic

from redis.exceptions import RedisError

from service.config import LEASE_MARGIN_S
from service.lanes import Delivery, Sink, T
from service.lanes.breaker import Breakers
from service.lanes.retry import Backoff, Retries
from service.lanes.serial_array import ArrayRule, ArrayTurn, front_group, leave_queue
from service.lanes.serial_hold import Bookkeeping, Hold
from service.lanes.serial_turn import FencedPost, RecordTurn
from service.state.ledger import Ledger
from service.state.locks import Lease, TenantLocks

__all__ = ["ArrayRule", "FencedPost", "SerialLane", "SerialPolicy"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SerialPolicy:
    lock_wait_s: float
    max_attempts: int
    backoff: Backoff
    call_timeout_s: float
    """The Connector client's timeout: a call ends (at the client) within this."""
    settle_s: float
    """How long the Connector may go on with a call after its client gave up."""
    redis_retry_s: float = 0.5
    hold_records: int = 50
    """Most records delivered under one acquisition of a tenant lock."""
    hold_s: float = 0.5
    """Longest one acquisition is kept while records are queued."""


async def _never_doubtful(ticket: object) -> bool:
    return False


class SerialLane(Generic[T]):
    def __init__(
        self,
        post: FencedPost,
        sink: Sink[T],
        locks: TenantLocks,
        ledger: Ledger,
        policy: SerialPolicy,
        breakers: Breakers,
        *,
        on_dropped: Callable[[Sequence[T]], None] = lambda tickets: None,
        doubtful: Callable[[T], Awaitable[bool]] = _never_doubtful,
        on_lock_wait: Callable[[float], None] = lambda seconds: None,
        on_ledger_hit: Callable[[], None] = lambda: None,
        arrays: Mapping[str, ArrayRule] | None = None,
    ) -> None:
        """``on_dropped`` receives tickets this lane gave up without an answer (withdrawn, or
        answered meanwhile by another replica); ``doubtful`` says whether a record the ledger
        does not know may have been sent before Redis lost its data. For metrics:
        ``on_lock_wait`` gets the seconds each lock acquisition waited, ``on_ledger_hit`` is
        told of each redelivery answered from the ledger without a call. ``arrays``: the array
        rule of each endpoint whose route sets ``batch_max`` (any other endpoint sends one
        record per call)."""
        self._breakers = breakers
        self._on_dropped = on_dropped
        self._locks = locks
        self._policy = policy
        self._book: Bookkeeping[T] = Bookkeeping(
            ledger,
            locks,
            sink,
            on_dropped,
            settle_s=policy.settle_s,
            redis_retry_s=policy.redis_retry_s,
        )
        retries = Retries(
            policy.max_attempts, policy.backoff, retry_unknown=False, wait_out_outage=False
        )
        parts = (post, breakers, self._book, retries)
        margin = policy.call_timeout_s + LEASE_MARGIN_S
        self._turn: RecordTurn[T] = RecordTurn(
            *parts, call_margin_s=margin, doubtful=doubtful, ledger_hit=on_ledger_hit
        )
        self._array_turn: ArrayTurn[T] = ArrayTurn(
            *parts, call_margin_s=margin, doubtful=doubtful, ledger_hit=on_ledger_hit
        )
        self._arrays = {e: r for e, r in (arrays or {}).items() if r.batch_max > 1}
        self._queues: dict[tuple[str, str], deque[Delivery[T]]] = {}
        self._current: dict[tuple[str, str], list[Delivery[T]]] = {}
        self._workers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._on_lock_wait = on_lock_wait

    @property
    def redis_ok(self) -> bool:
        """False while Redis is unreachable (the lane is paused); readiness reports it."""
        return self._book.redis_ok

    def submit(self, delivery: Delivery[T]) -> None:
        key = delivery.tenant.key
        self._queues.setdefault(key, deque()).append(delivery)
        self._idle.clear()
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._work(key), name=f"serial-{key}")

    def withdraw(self, unwanted: Callable[[T], bool]) -> None:
        """Give up the queued records whose ticket is ``unwanted`` (their partition was
        revoked): those not begun are dropped now; one being begun is dropped before its call
        starts, its intent withdrawn. One already inside a call finishes and is answered."""
        for key, queue in self._queues.items():
            current = self._current.get(key, [])
            dropped: list[T] = []
            kept: deque[Delivery[T]] = deque()
            for delivery in queue:
                if not unwanted(delivery.ticket):
                    kept.append(delivery)
                elif delivery in current:  # being begun or in a call
                    delivery.withdrawn = True
                    kept.append(delivery)
                else:
                    dropped.append(delivery.ticket)
            if dropped:
                queue.clear()
                queue.extend(kept)  # the same deque: the worker holds it
                self._on_dropped(dropped)

    async def drain(self) -> None:
        """Wait until every queued record has an outcome."""
        await self._idle.wait()

    async def close(self) -> None:
        """Stop every worker (after a drain that timed out): a result already known is still
        written and the lock released; records still queued are replayed by the next owner."""
        workers = list(self._workers.values())
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self, key: tuple[str, str]) -> None:
        queue = self._queues[key]
        try:
            while queue:
                try:
                    lease = await self._acquire(queue)
                    if lease is not None:
                        await self._serve(lease, queue)
                except Exception:  # a bug must not strand this tenant's records for good
                    log.exception("serial lane worker failed; starting over", extra={"tenant": key})
                    await asyncio.sleep(self._policy.redis_retry_s)
        finally:
            del self._workers[key]
            self._current.pop(key, None)
            if not self._workers:
                self._idle.set()

    async def _acquire(self, queue: deque[Delivery[T]]) -> Lease | None:
        """Wait for the Connector (breaker) and then the tenant lock; Redis trouble means wait.
        ``None`` if the queue emptied meanwhile (its records were withdrawn)."""
        tenant = queue[0].tenant.key
        breaker = self._breakers.for_tenant(tenant)
        loop = asyncio.get_running_loop()
        while queue:
            await breaker.admit()  # during an outage, wait without holding the tenant's lock
            started = loop.time()
            try:
                lease = await self._locks.acquire(tenant, self._policy.lock_wait_s)
            except RedisError as exc:
                await self._book.redis_down("acquire", exc)
                continue
            self._book.redis_ok = True
            if lease is None:
                log.warning("tenant lock still unavailable, waiting on", extra={"tenant": tenant})
                continue
            self._on_lock_wait(loop.time() - started)
            if queue:
                return lease
            await self._book.release(lease, settled=not lease.occupied)
        return None

    async def _serve(self, lease: Lease, queue: deque[Delivery[T]]) -> None:
        """Deliver queued records one by one under one acquisition, for at most
        ``hold_records`` records or ``hold_s`` seconds — then the lock goes back, so other
        replicas' records for this tenant get their turn. A delivered record's ledger write
        rides on the next record's begin; the last one's is written before the release."""
        hold: Hold[T] = Hold(lease, settled=not lease.occupied)
        try:
            async with self._locks.kept_alive(lease):
                try:
                    if not hold.settled:
                        log.warning(
                            "an earlier holder's call may still be running at the Cloud "
                            "Connector; waiting the settle period before calling",
                            extra={"tenant": lease.tenant, "settle_s": self._policy.settle_s},
                        )
                        await asyncio.sleep(self._policy.settle_s)
                        hold.settled = True
                    await self._serve_records(hold, queue)
                finally:
                    await self._book.record_last(hold)
        finally:
            await self._book.release(lease, settled=hold.settled and lease.usable())

    async def _serve_records(self, hold: Hold[T], queue: deque[Delivery[T]]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._policy.hold_s
        key = hold.lease.tenant
        served = 0
        while queue and served < self._policy.hold_records and loop.time() < deadline:
            if not hold.lease.usable():
                return  # lease lost or run out: another replica may hold the lock now
            delivery = queue[0]
            if delivery.withdrawn:
                queue.popleft()
                self._on_dropped([delivery.ticket])
                continue
            rule = self._arrays.get(delivery.endpoint)
            if rule is not None:
                carried, goes_on = await self._take_array(hold, queue, rule)
                served += carried
                if not goes_on:
                    return
                continue
            with self._in_turn(key, [delivery]):
                carry_on = await delivery.traced(self._turn.take(hold, delivery))
            if carry_on is None:
                return  # Redis trouble, lease lost, Connector down: nothing reached Sage
            queue.popleft()
            served += 1
            if not carry_on:
                return

    async def _take_array(
        self, hold: Hold[T], queue: deque[Delivery[T]], rule: ArrayRule
    ) -> tuple[int, bool]:
        """One array call for the queued records at the front that share the first one's
        endpoint (up to ``rule.batch_max``, in order); the served ones leave the queue, the
        rest keep their place. Returns how many were served and whether the hold goes on."""
        group = front_group(queue, rule.batch_max)
        with self._in_turn(hold.lease.tenant, group):
            served, carry_on = await self._array_turn.take(hold, group, rule)
        leave_queue(queue, group, served)
        return len(served), carry_on

    @contextmanager
    def _in_turn(self, key: tuple[str, str], deliveries: list[Delivery[T]]) -> Iterator[None]:
        """While ``deliveries`` are being begun or called: withdrawing marks them, never drops
        them (see :meth:`withdraw`)."""
        self._current[key] = deliveries
        try:
            yield
        finally:
            self._current.pop(key, None)
