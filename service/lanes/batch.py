"""Batch lane: master-data records of one (tenant, endpoint) travel as one JSON array.

A buffer per (tenant, endpoint) fills until ``batch_max`` records or until its oldest record has
waited ``batch_wait`` — whichever comes first — then flushes as one call. Up to ``concurrency``
calls per buffer may be in flight, but never two holding the same record identity, so updates
to one Sage row arrive in the order they were produced. A rejected array is split
(:mod:`service.lanes.isolate`) until every good record has landed and every bad one has its own
ERROR. Retryable failures are retried with backoff; upserts are idempotent, so an unknown
outcome is retried too. While the tenant's breaker is open (:mod:`service.lanes.breaker`),
calls wait.

Records can be withdrawn (their partition was revoked, so its new owner answers them): those
still buffered are dropped at once, and those in a batch waiting to be (re)sent leave it before
its next attempt. A record inside a call in progress is answered as usual.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic

import orjson

from service.answers.outcomes import Outcome, Stage
from service.connector.results import CallResult, Delivered, Rejected, Retryable, Unknown
from service.lanes import CallSpan, Delivery, Sink, T, untraced
from service.lanes.breaker import Breakers
from service.lanes.isolate import split_plan
from service.lanes.retry import Backoff, Concluded, Retries, call_with_retries
from service.tenants import Tenant

log = logging.getLogger(__name__)

Post = Callable[[Tenant, str, bytes], Awaitable[CallResult]]


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    batch_max: int
    batch_wait_s: float
    concurrency: int
    max_attempts: int
    backoff: Backoff


@dataclass(eq=False)
class _Buffer(Generic[T]):
    """The records waiting for one (tenant, endpoint), and its calls in flight."""

    tenant: Tenant
    endpoint: str
    pending: deque[tuple[float, Delivery[T]]] = field(default_factory=deque)
    """(arrival time, record), oldest first."""
    in_flight_calls: int = 0
    in_flight_identities: dict[Hashable, int] = field(default_factory=dict)
    """Calls in flight per identity; an identity is a key here only while that is above 0."""
    timer: asyncio.TimerHandle | None = None

    def take(self, batch_max: int) -> list[Delivery[T]]:
        """Up to ``batch_max`` records in arrival order, skipping identities in flight (and every
        later record of a skipped identity, so the order per identity holds)."""
        batch: list[Delivery[T]] = []
        skipped: list[tuple[float, Delivery[T]]] = []
        held: set[Hashable] = set()
        busy = self.in_flight_identities
        pending = self.pending
        while pending and len(batch) < batch_max:
            entry = pending.popleft()
            identity = entry[1].identity
            if identity is not None and (identity in held or identity in busy):
                held.add(identity)
                skipped.append(entry)
            else:
                batch.append(entry[1])
        # Skipped records go back in front, in their order; the rest of the queue stays
        # where it is (copying it on every take would cost a pass over the whole buffer).
        pending.extendleft(reversed(skipped))
        return batch

    def due(self, policy: BatchPolicy, now: bool) -> bool:
        """Whether a call should take records: asked for ``now``, a full array, or the oldest
        record has waited ``batch_wait``."""
        if not self.pending:
            return False
        if now or len(self.pending) >= policy.batch_max:
            return True
        return asyncio.get_running_loop().time() - self.pending[0][0] >= policy.batch_wait_s

    def drop(self, unwanted: Callable[[T], bool]) -> list[T]:
        """Remove the waiting records whose ticket is ``unwanted``; their tickets."""
        dropped: list[T] = []
        kept: deque[tuple[float, Delivery[T]]] = deque()
        for entry in self.pending:
            if unwanted(entry[1].ticket):
                dropped.append(entry[1].ticket)
            else:
                kept.append(entry)
        self.pending = kept
        return dropped

    def calling(self, batch: list[Delivery[T]]) -> None:
        """A call with ``batch`` starts: its identities are in flight."""
        self.in_flight_calls += 1
        busy = self.in_flight_identities
        for delivery in batch:
            if delivery.identity is not None:
                busy[delivery.identity] = busy.get(delivery.identity, 0) + 1

    def called(self, batch: list[Delivery[T]]) -> None:
        """The call that started with ``batch`` has ended."""
        self.in_flight_calls -= 1
        busy = self.in_flight_identities
        for delivery in batch:
            if delivery.identity is not None:
                left = busy[delivery.identity] - 1
                if left > 0:
                    busy[delivery.identity] = left
                else:
                    del busy[delivery.identity]


class BatchLane(Generic[T]):
    def __init__(
        self,
        post: Post,
        sink: Sink[T],
        policy: BatchPolicy,
        breakers: Breakers,
        *,
        on_dropped: Callable[[Sequence[T]], None] = lambda tickets: None,
        on_call: Callable[[int], None] = lambda size: None,
        call_span: CallSpan = untraced,
    ) -> None:
        """``on_dropped`` receives the tickets of withdrawn records, given up unanswered;
        ``on_call`` the array size of every call (metrics); ``call_span`` opens each call's
        trace span."""
        self._post = post
        self._breakers = breakers
        self._sink = sink
        self._on_dropped = on_dropped
        self._policy = policy
        self._retries = Retries(
            policy.max_attempts, policy.backoff, retry_unknown=True, wait_out_outage=True
        )
        self._buffers: dict[tuple[tuple[str, str], str], _Buffer[T]] = {}
        self._sending: dict[int, list[Delivery[T]]] = {}
        """Batches taken from their buffer and not yet answered, by ``id``."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._on_call = on_call
        self._call_span = call_span

    def submit(self, deliveries: Sequence[Delivery[T]]) -> None:
        """Queue records, in order; never blocks. Their outcomes reach the sink later. Records
        handed over together (a poll's) share one arrival time, read once for all of them."""
        if deliveries:
            self._idle.clear()
        loop = asyncio.get_running_loop()
        now = loop.time()
        for delivery in deliveries:
            key = (delivery.tenant.key, delivery.endpoint)
            buffer = self._buffers.get(key)
            if buffer is None:
                buffer = self._buffers[key] = _Buffer(delivery.tenant, delivery.endpoint)
            buffer.pending.append((now, delivery))
            if len(buffer.pending) >= self._policy.batch_max or self._draining:
                if buffer.in_flight_calls < self._policy.concurrency:
                    self._flush(buffer)  # else the next call to end flushes (and arms no timer)
            elif buffer.timer is None:
                buffer.timer = loop.call_later(self._policy.batch_wait_s, self._on_timer, buffer)

    def withdraw(self, unwanted: Callable[[T], bool]) -> None:
        """Give up the records whose ticket is ``unwanted``: buffered ones now, those in a
        batch before its next attempt (see module docstring)."""
        dropped: list[T] = []
        for buffer in self._buffers.values():
            dropped += buffer.drop(unwanted)
        for batch in self._sending.values():
            for delivery in batch:
                if unwanted(delivery.ticket):
                    delivery.withdrawn = True
        if dropped:
            self._on_dropped(dropped)
        self._mark_idle_if_done()

    def hurry(self) -> None:
        """Send what waits now, full arrays or not (see :meth:`MasterData.hurry`)."""
        for buffer in self._buffers.values():
            self._flush(buffer, now=True)

    async def drain(self) -> None:
        """Flush every buffer now and wait until every queued record has an outcome."""
        self._draining = True
        self.hurry()
        await self._idle.wait()

    async def close(self) -> None:
        """Stop every call in progress (after a drain that timed out); their records are
        replayed by the next owner."""
        for buffer in self._buffers.values():
            if buffer.timer is not None:
                buffer.timer.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _on_timer(self, buffer: _Buffer[T]) -> None:
        buffer.timer = None
        self._flush(buffer)

    def _flush(self, buffer: _Buffer[T], *, now: bool = False) -> None:
        while buffer.in_flight_calls < self._policy.concurrency and buffer.due(
            self._policy, now or self._draining
        ):
            batch = buffer.take(self._policy.batch_max)
            if not batch:
                # Everything left waits for an identity that is in flight; that call's end
                # flushes again. (A timer here would fire at once, for ever: a busy loop.)
                return
            buffer.calling(batch)
            task = asyncio.create_task(self._run(buffer, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._arm_timer(buffer)

    def _arm_timer(self, buffer: _Buffer[T]) -> None:
        if buffer.timer is not None or not buffer.pending:
            return
        loop = asyncio.get_running_loop()
        wait = max(0.0, buffer.pending[0][0] + self._policy.batch_wait_s - loop.time())
        if buffer.in_flight_calls < self._policy.concurrency:
            buffer.timer = loop.call_later(wait, self._on_timer, buffer)
        # else: the next finishing call flushes

    async def _run(self, buffer: _Buffer[T], batch: list[Delivery[T]]) -> None:
        taken = list(batch)  # ``batch`` loses withdrawn records on the way
        self._sending[id(batch)] = batch
        try:
            await self._deliver(buffer, batch)
        except Exception as exc:  # a bug must not strand records without an outcome
            log.exception("batch lane failed unexpectedly")
            self._report(batch, Outcome.internal_error(exc))
        finally:
            del self._sending[id(batch)]
            buffer.called(taken)
            self._flush(buffer)
            self._mark_idle_if_done()

    def _mark_idle_if_done(self) -> None:
        # Counted, not read off the task set: a finished task leaves that set only in a later
        # callback, so a check there could miss the moment the lane goes idle.
        if not any(b.pending or b.in_flight_calls for b in self._buffers.values()):
            self._idle.set()

    async def _deliver(self, buffer: _Buffer[T], batch: list[Delivery[T]]) -> None:
        result = await self._call(buffer, batch)
        if result is None:
            return  # every record was withdrawn
        if isinstance(result, Delivered):
            # One outcome for all: every record of a batch has been in the same calls.
            self._report(batch, Outcome.success(batch[0].attempts))
        elif isinstance(result, Rejected) and len(batch) > 1 and not result.whole_call:
            for part in split_plan(len(batch), result.record_index):
                await self._deliver(buffer, batch[part])
        else:
            reason = result.message if isinstance(result, Rejected) else result.reason
            failure = Outcome.failure(Stage.CONNECTOR, reason, attempts=batch[0].attempts)
            self._report(batch, failure)

    async def _call(self, buffer: _Buffer[T], batch: list[Delivery[T]]) -> Concluded | None:
        """The batch as one call, retried (:mod:`service.lanes.retry`); an unknown outcome is
        retried too, and an outage waited out. Withdrawn records leave ``batch`` before each
        attempt; ``None`` once none is left."""
        payload = orjson.dumps([delivery.record for delivery in batch])

        async def attempt() -> CallResult | None:
            nonlocal payload
            if any(delivery.withdrawn for delivery in batch):
                self._on_dropped([d.ticket for d in batch if d.withdrawn])
                batch[:] = [d for d in batch if not d.withdrawn]
                if not batch:
                    return None
                payload = orjson.dumps([delivery.record for delivery in batch])
            for delivery in batch:
                delivery.attempts += 1
            self._on_call(len(batch))
            traces = [delivery.trace for delivery in batch if delivery.trace is not None]
            with self._call_span(buffer.endpoint, traces):
                return await self._post(buffer.tenant, buffer.endpoint, payload)

        def retrying(failures: int, result: Retryable | Unknown, delay: float) -> None:
            log.warning(
                "batch call failed, retrying",
                extra={
                    "endpoint": buffer.endpoint,
                    "attempt": failures,
                    "reason": result.reason,
                    "retry_in_s": round(delay, 3),
                },
            )

        return await call_with_retries(
            attempt,
            self._breakers.for_tenant(buffer.tenant.key),
            self._retries,
            made=batch[0].attempts,  # every record of a batch has been in the same calls
            on_retry=retrying,
        )

    def _report(self, batch: list[Delivery[T]], outcome: Outcome) -> None:
        self._sink([(delivery.ticket, outcome) for delivery in batch])
