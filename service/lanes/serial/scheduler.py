"""Serial lane: transactional records, one call at a time per tenant, across all replicas.

Each company has one worker (:class:`~service.lanes.serial.worker.CompanyWorker`) while it has
records queued: :meth:`SerialLane.submit` finds or starts it and hands it the record. The worker
owns the company's queue (arrival order, so one partition's records keep their offset order) and
takes it turn by turn: wait at the company's gate (:mod:`~service.lanes.serial.gate`: its
breaker, then its lock), serve the queue under that hold (:class:`~service.lanes.serial.hold.Hold`)
for at most ``hold_records`` records or ``hold_s`` seconds — then the lock goes back, so other
replicas' records for this company get their turn. Companies have separate workers and locks, so
they run in parallel; the batch lane never waits behind this one.

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
without the lock. An unexpected error never stops the company's worker, so one record cannot
hold up the invoices queued behind it. What one turn does is :mod:`service.lanes.serial.turn`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Generic

from service.config import LEASE_MARGIN_S
from service.lanes import Delivery, Sink, T
from service.lanes.breaker import Breakers
from service.lanes.retry import Retries
from service.lanes.serial.gate import CompanyGate
from service.lanes.serial.hold import Bookkeeping
from service.lanes.serial.lookups import Lookups, no_lookups
from service.lanes.serial.policy import SerialPolicy
from service.lanes.serial.ports import SerialLedger, SerialLocks
from service.lanes.serial.turn import ArrayRule, FencedPost, Turn
from service.lanes.serial.worker import CompanyWorker
from service.tenants import TenantKey


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
        self._locks = locks
        self._policy = policy
        self._on_lock_wait = on_lock_wait
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
        self._workers: dict[TenantKey, CompanyWorker[T]] = {}
        """The companies with records queued, each with its worker."""
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def busy_companies(self) -> int:
        """Companies with a worker: records queued or in a call. An idle company has none (no
        task, no lock, no Redis traffic), so this falls to 0 once every queue is empty."""
        return len(self._workers)

    @property
    def redis_ok(self) -> bool:
        """False while Redis is unreachable (the lane is paused); readiness reports it."""
        return self._books.redis_ok

    def submit(self, delivery: Delivery[T]) -> None:
        """Hand ``delivery`` to its company's worker, started if the company had none."""
        self._idle.clear()
        self._worker_for(delivery.tenant.key).take(delivery)

    def withdraw(self, unwanted: Callable[[T], bool]) -> None:
        """Give up the queued records whose ticket is ``unwanted`` (their partition was
        revoked): those not begun are dropped now; one being begun is dropped before its call
        starts, its intent withdrawn. One already inside a call finishes and is answered."""
        for worker in list(self._workers.values()):
            worker.withdraw(unwanted)

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
        await asyncio.gather(*(worker.close() for worker in list(self._workers.values())))

    def _worker_for(self, tenant: TenantKey) -> CompanyWorker[T]:
        """The company's worker; a new one, with its gate, if its queue was empty."""
        worker = self._workers.get(tenant)
        if worker is None:
            gate = CompanyGate(
                tenant,
                self._breakers.for_tenant(tenant),
                self._locks,
                self._books,
                lock_wait_s=self._policy.lock_wait_s,
                on_lock_wait=self._on_lock_wait,
            )
            worker = self._workers[tenant] = CompanyWorker(
                tenant, gate, self._books, self._turn, self._policy, self._arrays, ended=self._ended
            )
        return worker

    def _ended(self, worker: CompanyWorker[T]) -> None:
        """``worker``'s queue is empty and its task ends: the company's next record starts a
        new one."""
        del self._workers[worker.tenant]
        if not self._workers:
            self._idle.set()


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
