"""One company's worker in the serial lane: its queue, the records of its current turn, and the
task that serves them, from the first record queued until the queue is empty.

The worker reads top to bottom: wait at the company's gate (breaker, then lock), serve turns
under that hold (:class:`~service.lanes.serial.hold.Hold`) for at most ``hold_records`` records
or ``hold_s`` seconds (``hold_alone_s`` while no other replica waits for the lock), release —
and again while records are queued. Then it ends, and the scheduler forgets it: an idle company
costs nothing, and its next record starts a new worker.

An unexpected error never ends the worker, so one record cannot hold up the invoices queued
behind it. On shutdown the records still queued are given up unanswered, uncommitted, for the
partition's next owner.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Generic

from service.lanes import Delivery, T
from service.lanes.serial.gate import CompanyGate
from service.lanes.serial.hold import Bookkeeping, Hold
from service.lanes.serial.policy import SerialPolicy
from service.lanes.serial.turn import ArrayRule, Turn
from service.tenants import TenantKey

log = logging.getLogger("service.lanes.serial")

_ONE_AT_A_TIME = ArrayRule()


class CompanyWorker(Generic[T]):
    """One company's queued records and the task that serves them (see the module docstring)."""

    def __init__(
        self,
        tenant: TenantKey,
        gate: CompanyGate[T],
        books: Bookkeeping[T],
        turn: Turn[T],
        policy: SerialPolicy,
        arrays: Mapping[str, ArrayRule],
        *,
        ended: Callable[[CompanyWorker[T]], None],
    ) -> None:
        """``gate``: the company's breaker and lock; ``books``, ``turn``, ``policy`` and
        ``arrays`` are the lane's, shared by every company; ``ended`` is told when the queue is
        empty and the task is about to end (nothing can be queued on this worker after that)."""
        self.tenant = tenant
        self._gate = gate
        self._books = books
        self._turn = turn
        self._policy = policy
        self._arrays = arrays
        self._ended = ended
        self._queue: deque[Delivery[T]] = deque()
        self._current: Sequence[Delivery[T]] = ()
        """Being begun or in a call: withdrawing marks them, never drops them."""
        self._task: asyncio.Task[None] | None = None

    def take(self, delivery: Delivery[T]) -> None:
        """Queue ``delivery`` behind the company's other records (arrival order keeps one
        partition's offset order); the first one starts the task."""
        self._queue.append(delivery)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"serial-{self.tenant}")

    def withdraw(self, unwanted: Callable[[T], bool]) -> None:
        """Give up the queued records whose ticket is ``unwanted``: those not begun now; one
        being begun is marked, and dropped before its call starts; one already inside a call
        finishes and is answered."""
        dropped: list[T] = []
        kept: deque[Delivery[T]] = deque()
        for delivery in self._queue:
            if not unwanted(delivery.ticket):
                kept.append(delivery)
            elif delivery in self._current:
                delivery.withdrawn = True
                kept.append(delivery)
            else:
                dropped.append(delivery.ticket)
        if dropped:
            self._queue.clear()
            self._queue.extend(kept)  # the same deque: a turn in progress reads it
            self._books.drop(dropped)

    async def close(self) -> None:
        """End the task now (after a drain that timed out): a result already known is still
        written and the lock released; records still queued are replayed by the next owner."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})

    async def _run(self) -> None:
        books = self._books
        try:
            while self._queue and not books.stopping.is_set():
                try:
                    hold = await self._acquire()
                    if hold is not None:
                        await self._serve(hold)
                except Exception:  # a bug must not strand this company's records for good
                    log.exception(
                        "serial lane worker failed; starting over", extra={"tenant": self.tenant}
                    )
                    await books.rest(self._policy.redis_retry_s)
            if self._queue:  # stopping: the partitions' next owner answers them
                books.drop([delivery.ticket for delivery in self._queue])
                self._queue.clear()
        finally:
            self._current = ()
            self._ended(self)

    async def _acquire(self) -> Hold[T] | None:
        """A hold on the company's lock; ``None`` if the queue emptied meanwhile (withdrawn)
        or the lane is stopping."""
        while self._queue and not self._books.stopping.is_set():
            lease = await self._gate.enter()
            if lease is None:
                continue
            if self._queue:
                return Hold(lease, self._books)
            await self._books.release(lease, quiet=not lease.occupied)
        return None

    async def _serve(self, hold: Hold[T]) -> None:
        """Serve the queue turn by turn under one hold; the pending results are written and
        the lock released however it ends."""
        tenant = self._queue[0].tenant  # the front record's: it carries the current token
        try:
            async with self._gate.kept_alive(hold.lease):
                try:
                    await hold.wait_out_earlier_call(tenant)
                    await self._serve_turns(hold)
                finally:
                    await hold.write_pending()
        finally:
            await hold.release()

    async def _serve_turns(self, hold: Hold[T]) -> None:
        loop = asyncio.get_running_loop()
        started, policy = loop.time(), self._policy
        served = turns = 0
        while self._queue and served < policy.hold_records:
            held_s = loop.time() - started
            if turns and (
                held_s >= policy.hold_alone_s or (held_s >= policy.hold_s and hold.wanted)
            ):
                return  # handed back, for another replica waiting (or every hold_alone_s)
            if self._books.stopping.is_set() or not hold.lease.usable():
                return  # stopping, or the lease lost or run out (another replica may hold it)
            first = self._queue[0]
            if first.withdrawn:
                self._queue.popleft()
                self._books.drop([first.ticket])
                continue
            rule = self._arrays.get(first.endpoint, _ONE_AT_A_TIME)
            self._current = group = front_group(self._queue, rule.batch_max)
            try:
                work = self._turn.take(hold, group, rule)
                served_now = await (first.traced(work) if len(group) == 1 else work)
            finally:
                self._current = ()
            leave_queue(self._queue, group, served_now.done)
            served += len(served_now.done)
            turns += 1
            if not served_now.goes_on:
                return


def front_group(queue: Iterable[Delivery[T]], batch_max: int) -> list[Delivery[T]]:
    """The records one turn carries: those at the front of a company's queue that share the
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
