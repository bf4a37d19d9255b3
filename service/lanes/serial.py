"""Serial lane: transactional records, one call at a time per tenant, across all replicas.

Per tenant, records queue in arrival order (so one partition's records keep their offset order)
and one worker takes them one by one: wait for the tenant lock, consult the ledger (which writes
the intent), call, record the result, release. Tenants have separate workers and locks, so they
run in parallel; the batch lane never waits behind this one.

Fail closed: any Redis error before the call means "wait and try again" — the lane never calls
without the lock. A call whose outcome is unknown (sent, no answer) is never resent: it is
reported ``unknown_outcome`` and its intent stays, so a redelivery is reported the same way.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Generic, Protocol

import orjson
from redis.exceptions import RedisError

from service.breaker import Breakers
from service.connector import CallResult, Delivered, Rejected, Retryable, Unknown
from service.lanes import Delivery, Sink, T
from service.lanes.retry import Backoff
from service.ledger import Entry, Ledger, Settlement, Standing, fingerprint
from service.locks import Held, TenantLocks, process_token
from service.outcomes import Outcome, Stage
from service.rediskeys import escape
from service.settings import Tenant

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Unrecorded(Generic[T]):
    """A call whose result is not in the ledger yet, and the answer that waits for it."""

    settlement: Settlement
    ticket: T
    outcome: Outcome


class FencedPost(Protocol):
    def __call__(
        self, tenant: Tenant, endpoint: str, payload: bytes, *, fence: int | None = None
    ) -> Awaitable[CallResult]: ...


@dataclass(frozen=True, slots=True)
class SerialPolicy:
    lock_wait_s: float
    max_attempts: int
    backoff: Backoff
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
        locks: TenantLocks,
        ledger: Ledger,
        policy: SerialPolicy,
        breakers: Breakers,
    ) -> None:
        self._post = post
        self._breakers = breakers
        self._sink = sink
        self._locks = locks
        self._ledger = ledger
        self._policy = policy
        self._queues: dict[tuple[str, str], deque[Delivery[T]]] = {}
        self._claim_prefix = process_token()
        self._claims = itertools.count()
        self._workers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.redis_ok = True
        """False while Redis is unreachable (the lane is paused); readiness reports it."""
        self.on_lock_wait: Callable[[float], None] | None = None
        """Metrics hook: seconds spent waiting for a tenant lock, per call."""
        self.on_ledger_hit: Callable[[], None] | None = None
        """Metrics hook: a redelivered event answered from the ledger, no call made."""

    def submit(self, delivery: Delivery[T]) -> None:
        key = delivery.tenant.key
        self._queues.setdefault(key, deque()).append(delivery)
        self._idle.clear()
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._work(key), name=f"serial-{key}")

    async def drain(self) -> None:
        """Wait until every queued record has an outcome."""
        await self._idle.wait()

    async def _work(self, key: tuple[str, str]) -> None:
        queue = self._queues[key]
        try:
            while queue:
                held = await self._acquire(queue[0])
                try:
                    await self._serve_while_held(held, queue)
                finally:
                    await self._release(held)
        finally:
            del self._workers[key]
            if not self._workers:
                self._idle.set()

    async def _acquire(self, delivery: Delivery[T]) -> Held:
        """Wait for the Connector (breaker) and then the tenant lock; Redis trouble means wait."""
        name = ":".join(escape(part) for part in delivery.tenant.key)
        breaker = self._breakers.for_tenant(delivery.tenant.key)
        loop = asyncio.get_running_loop()
        while True:
            await breaker.admit()  # during an outage, wait without holding the tenant's lock
            started = loop.time()
            try:
                held = await self._locks.acquire(name, self._policy.lock_wait_s)
            except RedisError as exc:
                await self._redis_down("acquire", exc)
                continue
            self.redis_ok = True
            if held is None:
                log.warning("tenant lock still taken, waiting on", extra={"tenant": name})
                continue
            if self.on_lock_wait is not None:
                self.on_lock_wait(loop.time() - started)
            return held

    async def _serve_while_held(self, held: Held, queue: deque[Delivery[T]]) -> None:
        """Deliver queued records one by one under one acquisition, for at most
        ``hold_records`` records or ``hold_s`` seconds — then the lock goes back, so other
        replicas' records for this tenant get their turn. Holding it across a run saves two
        Redis round trips per record; one call at a time holds throughout.

        A delivered record's ledger write rides on the next record's ``begin`` (one atomic
        script), and its answer follows once that ran: no round trip of its own, and a crash
        leaves at most the record in flight in doubt. The last record's write goes on its own,
        before the lock goes back."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._policy.hold_s
        served = 0
        unrecorded: _Unrecorded[T] | None = None
        async with self._locks.kept_alive(held):
            try:
                while queue and served < self._policy.hold_records and loop.time() < deadline:
                    if not held.usable():
                        return  # lease lost or run out: another replica may hold it now
                    delivery = queue[0]
                    digest = fingerprint(delivery.record)
                    try:
                        entry = await self._begin(
                            delivery, digest, unrecorded.settlement if unrecorded else None
                        )
                    except RedisError as exc:  # nothing was sent; the previous write is redone
                        await self._redis_down("ledger", exc)
                        return
                    if unrecorded is not None:  # its result went in with this begin
                        self._sink([(unrecorded.ticket, unrecorded.outcome)])
                        unrecorded = None
                    try:
                        outcome, settlement = await self._after_begin(held, delivery, digest, entry)
                    except Exception as exc:  # a bug must not strand the record unanswered
                        log.exception("serial lane failed unexpectedly")
                        outcome, settlement = (
                            Outcome.failure(
                                Stage.UNKNOWN_OUTCOME,
                                f"internal error: {exc!r}",
                                attempts=delivery.attempts,
                            ),
                            None,
                        )
                    if outcome is None:
                        return  # Connector down or lease run out; nothing reached Sage
                    queue.popleft()
                    served += 1
                    if settlement is None:
                        self._sink([(delivery.ticket, outcome)])
                    else:
                        unrecorded = _Unrecorded(settlement, delivery.ticket, outcome)
            finally:
                if unrecorded is not None:
                    await self._settle(unrecorded.settlement)
                    self._sink([(unrecorded.ticket, unrecorded.outcome)])

    async def _begin(self, delivery: Delivery[T], digest: str, after: Settlement | None) -> Entry:
        if not delivery.claim:
            delivery.claim = f"{self._claim_prefix}:{next(self._claims)}"
        return await self._ledger.begin(
            delivery.tenant.key, delivery.event_id, digest, claim=delivery.claim, after=after
        )

    async def _after_begin(
        self, held: Held, delivery: Delivery[T], digest: str, entry: Entry
    ) -> tuple[Outcome | None, Settlement | None]:
        """The record's outcome (``None``: try again once the Connector is back) and the
        ledger write still due before its reply."""
        match entry.standing:
            case Standing.DELIVERED:
                if self.on_ledger_hit is not None:
                    self.on_ledger_hit()
                return Outcome.success(entry.attempts), None
            case Standing.IN_DOUBT:
                return Outcome.failure(
                    Stage.UNKNOWN_OUTCOME,
                    "an earlier attempt reached the Cloud Connector without an answer; check Sage "
                    "before replaying — not resent",
                    attempts=entry.attempts,
                ), None
            case Standing.CONFLICT:
                return Outcome.failure(
                    Stage.VALIDATION,
                    f"event_id {delivery.event_id!r} was already used with "
                    "different data; not sent",
                ), None
            case Standing.NEW:
                pass
        result = await self._call(held, delivery)
        tenant = delivery.tenant.key
        if isinstance(result, Delivered):
            settled = Settlement(tenant, delivery.event_id, digest, delivery.attempts, True)
            return Outcome.success(delivery.attempts), settled
        if isinstance(result, Unknown):
            return Outcome.failure(
                Stage.UNKNOWN_OUTCOME,
                f"{result.reason}; the record may or may not be in Sage — not resent",
                attempts=delivery.attempts,
            ), None
        withdraw = Settlement(tenant, delivery.event_id, digest, delivery.attempts, False)
        if result is None:
            await self._settle(withdraw)  # before the record is tried again
            return None, None
        if isinstance(result, Rejected):
            return Outcome.failure(
                Stage.CONNECTOR, result.message, attempts=delivery.attempts
            ), withdraw
        return Outcome.failure(
            Stage.CONNECTOR,
            f"gave up after {delivery.attempts} attempts: {result.reason}",
            attempts=delivery.attempts,
        ), withdraw

    async def _call(self, held: Held, delivery: Delivery[T]) -> CallResult | None:
        """Call, retrying what was certainly not processed (connect errors, 5xx, 429) up to
        ``max_attempts`` while the Connector is deemed healthy; ``None`` if its breaker opened
        or the lease ran out before a call could start (the caller releases the lock and waits;
        Redis may have stalled past the TTL while the ledger was being read)."""
        payload = orjson.dumps(delivery.record)
        breaker = self._breakers.for_tenant(delivery.tenant.key)
        failures = 0
        while True:
            if not held.usable():
                return None
            delivery.attempts += 1
            result = await self._post(delivery.tenant, delivery.endpoint, payload, fence=held.fence)
            if not isinstance(result, Retryable):
                if isinstance(result, (Delivered, Rejected)):
                    breaker.success()
                else:
                    breaker.failure()  # unknown outcome: a timeout is a sign of trouble too
                return result
            breaker.failure()
            if breaker.is_open:
                return None
            failures += 1
            if failures >= self._policy.max_attempts:
                return result
            await asyncio.sleep(self._policy.backoff.delay(failures))

    async def _settle(self, settlement: Settlement) -> None:
        """Record a result after the call. Redis trouble here means retry the write, never the
        call: the outcome is known, only its bookkeeping is pending. Never raises RedisError."""
        while True:
            try:
                await self._ledger.settle(settlement)
            except RedisError as exc:
                await self._redis_down("ledger write", exc)
                continue
            self.redis_ok = True
            return

    async def _release(self, held: Held) -> None:
        # On Redis trouble the lock expires by itself; nobody else can take it meanwhile.
        with suppress(RedisError):
            await self._locks.release(held)

    async def _redis_down(self, step: str, exc: Exception) -> None:
        if self.redis_ok:
            log.error(
                "Redis unreachable: serial lane paused",
                extra={"step": step, "error": type(exc).__name__},
            )
        self.redis_ok = False
        await asyncio.sleep(self._policy.redis_retry_s)
