"""Serial lane: transactional records, one call at a time per tenant, across all replicas.

Per tenant, records queue in arrival order (so one partition's records keep their offset order)
and one worker takes them turn by turn: wait for the Connector (breaker) and the tenant lock,
then serve the queue under that hold (:class:`~service.lanes.serial.hold.Hold`) for at most
``hold_records`` records or ``hold_s`` seconds — then the lock goes back, so other replicas'
records for this tenant get their turn. Tenants have separate workers and locks, so they run in
parallel; the batch lane never waits behind this one.

"One at a time" is judged at the Cloud Connector, which ignores fencing headers and finishes a
request after its client gave up. So:

* a call starts only while the lease outlasts the call's own timeout plus a margin
  (:data:`~service.config.LEASE_MARGIN_S`): whoever holds the lock next, this call has ended
  at the client;
* a call whose outcome is unknown may still be running at the Connector: it is reported
  ``unknown_outcome`` and never resent, and the tenant makes no further call for the quiet
  period (``settle_s``) while this worker keeps the lock;
* a lock granted while an earlier holder's call may still be running (:attr:`Lease.occupied`)
  is first held quietly for ``settle_s`` too — unless the records that call carried are found in
  Sage (a route with a ``lookup``): then it has ended (:mod:`~service.lanes.serial.lookups`).

On shutdown (:meth:`SerialLane.stop`) no call starts any more, not even a retry: a call in
flight is finished and concluded, however long it takes (cut off, it would leave its records in
doubt for the next replica), the lock is released, and the records still queued are given up
unanswered, uncommitted, for the partition's next owner.

Fail closed: any Redis error before the call means "wait and try again" — the lane never calls
without the lock. An unexpected error never stops the tenant's worker, so one record cannot hold
up the invoices queued behind it. What one turn does is :mod:`service.lanes.serial.turn`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic

from service.config import LEASE_MARGIN_S
from service.errors import StateUnavailable
from service.lanes import Delivery, Sink, T
from service.lanes.breaker import Breaker, Breakers
from service.lanes.retry import Backoff, Retries
from service.lanes.serial.hold import Bookkeeping, Hold
from service.lanes.serial.lookups import Lookups, no_lookups
from service.lanes.serial.ports import SerialLedger, SerialLocks
from service.lanes.serial.turn import ArrayRule, FencedPost, Turn
from service.state.locks import Lease

log = logging.getLogger("service.lanes.serial")

_ONE_AT_A_TIME = ArrayRule()


@dataclass(frozen=True, slots=True)
class SerialPolicy:
    lock_wait_s: float
    max_attempts: int
    backoff: Backoff
    call_timeout_s: float
    """The Connector client's timeout: a call ends (at the client) within this."""
    settle_s: float
    """The settle period: how long the Connector may go on with a call after its client gave up."""
    redis_retry_s: float = 0.5
    hold_records: int = 50
    """Most records delivered under one acquisition of a tenant lock."""
    hold_s: float = 0.5
    """Longest one acquisition is kept while records are queued."""


class SerialLane(Generic[T]):
    def __init__(
        self,
        post: FencedPost,
        sink: Sink[T],
        locks: SerialLocks,
        ledger: SerialLedger,
        policy: SerialPolicy,
        breakers: Breakers,
        *,
        doubtful: Callable[[T], Awaitable[bool]],
        on_dropped: Callable[[Sequence[T]], None] = lambda tickets: None,
        on_lock_wait: Callable[[float], None] = lambda seconds: None,
        on_ledger_hit: Callable[[], None] = lambda: None,
        arrays: Mapping[str, ArrayRule] | None = None,
        lookups: Lookups | None = None,
    ) -> None:
        """``doubtful`` (required: it guards against resending after Redis lost data) says
        whether a record the ledger does not know may have been sent before Redis lost its
        data; ``on_dropped`` receives tickets this lane gave up without an answer (withdrawn,
        answered by another replica, left to the next owner on shutdown). For metrics:
        ``on_lock_wait`` gets each lock acquisition's wait, ``on_ledger_hit`` is told of each
        redelivery answered without a call. ``arrays``: the array rule of each endpoint whose
        route sets ``batch_max`` (any other endpoint sends one record per call). ``lookups``:
        the routes whose records in doubt are looked up in Sage (none: every record in doubt is
        left to a person, and an occupied lock always waits the settle period)."""
        self._breakers = breakers
        self._on_dropped = on_dropped
        self._locks = locks
        self._policy = policy
        self._books, self._turn = _parts(
            post,
            sink,
            locks,
            ledger,
            policy,
            breakers,
            doubtful,
            on_dropped,
            on_ledger_hit,
            lookups if lookups is not None else no_lookups(),
        )
        self._arrays = {e: r for e, r in (arrays or {}).items() if r.batch_max > 1}
        self._queues: dict[tuple[str, str], deque[Delivery[T]]] = {}
        self._current: dict[tuple[str, str], Sequence[Delivery[T]]] = {}
        self._workers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._on_lock_wait = on_lock_wait

    @property
    def redis_ok(self) -> bool:
        """False while Redis is unreachable (the lane is paused); readiness reports it."""
        return self._books.redis_ok

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

    def stop(self) -> None:
        """Start no call any more (see the module docstring); :meth:`drain` then returns once
        every worker has finished its call, released its lock and given up its queue."""
        self._books.stopping.set()

    async def drain(self) -> None:
        """Wait until every queued record has an outcome (after :meth:`stop`: or is given up)."""
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
            while queue and not self._books.stopping.is_set():
                try:
                    lease = await self._acquire(queue)
                    if lease is not None:
                        await self._serve(Hold(lease, self._books), queue)
                except Exception:  # a bug must not strand this tenant's records for good
                    log.exception("serial lane worker failed; starting over", extra={"tenant": key})
                    await self._books.rest(self._policy.redis_retry_s)
            if queue:  # stopping: the partitions' next owner answers them
                self._on_dropped([delivery.ticket for delivery in queue])
                queue.clear()
        finally:
            del self._workers[key]
            self._current.pop(key, None)
            if not self._workers:
                self._idle.set()

    async def _acquire(self, queue: deque[Delivery[T]]) -> Lease | None:
        """Wait for the breaker, then the tenant lock (Redis trouble: wait). ``None`` if the
        queue emptied meanwhile (withdrawn) or the lane is stopping."""
        tenant = queue[0].tenant.key
        breaker = self._breakers.for_tenant(tenant)
        loop = asyncio.get_running_loop()
        books = self._books
        while queue and not books.stopping.is_set():
            # Outage waits hold no lock; a shutdown ends both (a lock granted then expires).
            if not await books.unless_stopping(_admitted(breaker)):
                continue
            started = loop.time()
            try:
                lease = await books.unless_stopping(
                    self._locks.acquire(tenant, self._policy.lock_wait_s)
                )
            except StateUnavailable as exc:
                await self._books.redis_down("acquire", exc)
                continue
            self._books.redis_ok = True
            if lease is None:
                if not books.stopping.is_set():
                    log.warning(
                        "tenant lock still unavailable, waiting on", extra={"tenant": tenant}
                    )
                continue
            self._on_lock_wait(loop.time() - started)
            if queue:
                return lease
            await self._books.release(lease, quiet=not lease.occupied)
        return None

    async def _serve(self, hold: Hold[T], queue: deque[Delivery[T]]) -> None:
        """Serve the queue turn by turn under one hold; the pending results are written and
        the lock released however it ends."""
        tenant = queue[0].tenant  # the queue is not empty when a lease is granted
        try:
            async with self._locks.kept_alive(hold.lease):
                try:
                    await hold.wait_out_earlier_call(tenant)
                    await self._serve_turns(hold, queue)
                finally:
                    await hold.write_pending()
        finally:
            await hold.release()

    async def _serve_turns(self, hold: Hold[T], queue: deque[Delivery[T]]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._policy.hold_s
        served = 0
        while queue and served < self._policy.hold_records and loop.time() < deadline:
            if self._books.stopping.is_set() or not hold.lease.usable():
                return  # stopping, or the lease lost or run out (another replica may hold it)
            first = queue[0]
            if first.withdrawn:
                queue.popleft()
                self._on_dropped([first.ticket])
                continue
            rule = self._arrays.get(first.endpoint, _ONE_AT_A_TIME)
            group = front_group(queue, rule.batch_max)
            with self._in_turn(hold.lease.tenant, group):
                work = self._turn.take(hold, group, rule)
                served_now = await (first.traced(work) if len(group) == 1 else work)
            leave_queue(queue, group, served_now.done)
            served += len(served_now.done)
            if not served_now.goes_on:
                return

    @contextmanager
    def _in_turn(self, key: tuple[str, str], deliveries: Sequence[Delivery[T]]) -> Iterator[None]:
        """While ``deliveries`` are being begun or called: withdrawing marks them, never drops
        them (see :meth:`withdraw`)."""
        self._current[key] = deliveries
        try:
            yield
        finally:
            self._current.pop(key, None)


async def _admitted(breaker: Breaker) -> bool:
    await breaker.admit()
    return True


def front_group(queue: Iterable[Delivery[T]], batch_max: int) -> list[Delivery[T]]:
    """The records one turn carries: those at the front of a tenant's queue that share the
    first one's endpoint, up to ``batch_max``, in order. A withdrawn one ends the group (it is
    dropped when it reaches the front), and so does a second copy of an ``event_id`` already in
    it (a producer's retry, a replay): that copy is begun only in a later turn, once the
    earlier copy's result is in the ledger, and is answered from there. Begun in the same turn,
    the second copy's begin would find the first one's fresh intent and report it in doubt."""
    group: list[Delivery[T]] = []
    event_ids: set[str] = set()
    for delivery in queue:
        if len(group) == batch_max or delivery.withdrawn or delivery.event_id in event_ids:
            break
        if group and delivery.endpoint != group[0].endpoint:
            break
        group.append(delivery)
        event_ids.add(delivery.event_id)
    return group


def leave_queue(
    queue: deque[Delivery[T]], group: Sequence[Delivery[T]], done: Sequence[Delivery[T]]
) -> None:
    """Take ``group`` (the front of ``queue``) off the queue, but for the records not done,
    which keep their place at the front, in order."""
    finished = set(map(id, done))
    kept = [delivery for delivery in group if id(delivery) not in finished]
    for _ in group:
        queue.popleft()
    queue.extendleft(reversed(kept))


def _parts(
    post: FencedPost,
    sink: Sink[T],
    locks: SerialLocks,
    ledger: SerialLedger,
    policy: SerialPolicy,
    breakers: Breakers,
    doubtful: Callable[[T], Awaitable[bool]],
    on_dropped: Callable[[Sequence[T]], None],
    on_ledger_hit: Callable[[], None],
    lookups: Lookups,
) -> tuple[Bookkeeping[T], Turn[T]]:
    """The lane's bookkeeping (what holds write and answer) and its turn (how a group of
    records is served), both under the lane's policy."""
    books: Bookkeeping[T] = Bookkeeping(
        ledger,
        locks,
        sink,
        on_dropped,
        settle_s=policy.settle_s,
        redis_retry_s=policy.redis_retry_s,
        lookups=lookups,
    )
    retries = Retries(
        policy.max_attempts, policy.backoff, retry_unknown=False, wait_out_outage=False
    )
    turn: Turn[T] = Turn(
        post,
        breakers,
        retries,
        call_margin_s=policy.call_timeout_s + LEASE_MARGIN_S,
        doubtful=doubtful,
        ledger_hit=on_ledger_hit,
        lookups=lookups,
    )
    return books, turn
