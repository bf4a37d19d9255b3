"""Serial lane: transactional records, one call at a time per tenant, across all replicas.

Per tenant, records queue in arrival order (so one partition's records keep their offset order)
and one worker takes them one by one: wait for the tenant lock, begin in the ledger (which
writes the intent, checks and renews the lease in the same script), call, record the result.
Tenants have separate workers and locks, so they run in parallel; the batch lane never waits
behind this one.

"One at a time" is judged at the Cloud Connector, which ignores fencing headers and finishes a
request after its client gave up. So:

* a call starts only while the lease outlasts the call's own timeout plus a margin
  (:data:`LEASE_MARGIN_S`): whoever holds the lock next, this call has ended at the client;
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
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Generic, Protocol

import orjson
from redis.exceptions import RedisError

from service.answers.outcomes import Outcome, Stage
from service.config import Tenant
from service.connector.results import CallResult, Delivered, Rejected, Unknown
from service.lanes import Delivery, Sink, T
from service.lanes.breaker import Breakers
from service.lanes.retry import Backoff, Concluded, Retries, call_with_retries
from service.state.ledger import (
    Entry,
    EpochMovedError,
    Guard,
    LeaseLost,
    Ledger,
    Settlement,
    Standing,
    fingerprint,
)
from service.state.locks import Lease, TenantLocks, process_token

log = logging.getLogger(__name__)

LEASE_MARGIN_S = 0.5
"""Beyond the call's own timeout, how much of the lease must remain for a call to start: room
for the time between the lease check and the request leaving, and for clock drift."""


class FencedPost(Protocol):
    def __call__(
        self, tenant: Tenant, endpoint: str, payload: bytes, *, fence: int | None = None
    ) -> Awaitable[CallResult]: ...


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


@dataclass(frozen=True, slots=True)
class _Unrecorded(Generic[T]):
    """A call whose result is not in the ledger yet, and the answer that waits for it."""

    settlement: Settlement
    ticket: T
    outcome: Outcome


@dataclass(slots=True)
class _Hold(Generic[T]):
    """One acquisition of a tenant's lock, while it is being used."""

    lease: Lease
    settled: bool
    """No call made by this tenant's holders can still be running at the Connector."""
    unrecorded: _Unrecorded[T] | None = None


IN_DOUBT_MESSAGE = (
    "an earlier attempt reached the Cloud Connector without an answer; check Sage before "
    "replaying — not resent"
)
LEDGER_LOST_MESSAGE = (
    "Redis lost the ledger after this record may already have been sent; check Sage before "
    "replaying — not resent"
)


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
    ) -> None:
        """``on_dropped`` receives tickets this lane gave up without an answer (withdrawn, or
        answered meanwhile by another replica); ``doubtful`` says whether a record the ledger
        does not know may have been sent before Redis lost its data."""
        self._post = post
        self._breakers = breakers
        self._sink = sink
        self._on_dropped = on_dropped
        self._doubtful = doubtful
        self._locks = locks
        self._ledger = ledger
        self._policy = policy
        self._call_margin_s = policy.call_timeout_s + LEASE_MARGIN_S
        self._retries = Retries(
            policy.max_attempts, policy.backoff, retry_unknown=False, wait_out_outage=False
        )
        self._queues: dict[tuple[str, str], deque[Delivery[T]]] = {}
        self._current: dict[tuple[str, str], Delivery[T]] = {}
        self._claim_prefix = process_token()
        self._claims = itertools.count()
        self._workers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.redis_ok = True
        """False while Redis is unreachable (the lane is paused); readiness reports it."""
        self.on_lock_wait: Callable[[float], None] | None = None
        """Metrics hook: seconds spent waiting for a tenant lock, per acquisition."""
        self.on_ledger_hit: Callable[[], None] | None = None
        """Metrics hook: a redelivered event answered from the ledger, no call made."""

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
            current = self._current.get(key)
            dropped: list[T] = []
            kept: deque[Delivery[T]] = deque()
            for delivery in queue:
                if not unwanted(delivery.ticket):
                    kept.append(delivery)
                elif delivery is current:
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
                await self._redis_down("acquire", exc)
                continue
            self.redis_ok = True
            if lease is None:
                log.warning("tenant lock still unavailable, waiting on", extra={"tenant": tenant})
                continue
            if self.on_lock_wait is not None:
                self.on_lock_wait(loop.time() - started)
            if queue:
                return lease
            await self._release(lease, settled=not lease.occupied)
        return None

    async def _serve(self, lease: Lease, queue: deque[Delivery[T]]) -> None:
        """Deliver queued records one by one under one acquisition, for at most
        ``hold_records`` records or ``hold_s`` seconds — then the lock goes back, so other
        replicas' records for this tenant get their turn. A delivered record's ledger write
        rides on the next record's begin; the last one's is written before the release."""
        hold: _Hold[T] = _Hold(lease, settled=not lease.occupied)
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
                    await self._record_last(hold)
        finally:
            await self._release(lease, settled=hold.settled and lease.usable())

    async def _serve_records(self, hold: _Hold[T], queue: deque[Delivery[T]]) -> None:
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
            self._current[key] = delivery
            try:
                carry_on = await self._serve_one(hold, delivery)
            finally:
                self._current.pop(key, None)
            if carry_on is None:
                return  # Redis trouble, lease lost, Connector down: nothing reached Sage
            queue.popleft()
            served += 1
            if not carry_on:
                return

    async def _serve_one(self, hold: _Hold[T], delivery: Delivery[T]) -> bool | None:
        """One record: ``True`` served, go on; ``False`` served, end the hold; ``None`` not
        served, end the hold (the record stays first in its queue)."""
        try:
            digest = fingerprint(delivery.record)
            payload = orjson.dumps(delivery.record)
        except Exception as exc:  # nothing was sent: the record's own problem, answered alone
            self._answer(delivery, _cannot_prepare(exc))
            return True
        begun = await self._begin(hold, delivery, digest)
        if begun is None:
            return None
        ledger_lost_it = begun.standing is Standing.NEW and await self._doubtful(delivery.ticket)
        match begun.standing:
            case Standing.DELIVERED:
                if self.on_ledger_hit is not None:
                    self.on_ledger_hit()
                self._answer(delivery, Outcome.success(begun.attempts))
                return True
            case Standing.IN_DOUBT:
                self._answer(delivery, _unknown(IN_DOUBT_MESSAGE, begun.attempts))
                return True
            case Standing.CONFLICT:
                self._answer(delivery, Outcome.reused_event_id(delivery.event_id))
                return True
            case Standing.NEW if ledger_lost_it:
                self._answer(delivery, _unknown(LEDGER_LOST_MESSAGE, delivery.attempts))
                return True
        hold.settled = False  # a call is about to be made
        try:
            result = await self._call(hold.lease, delivery, payload)
        except Exception as exc:  # a bug: the call may or may not have been made
            log.exception("serial lane failed unexpectedly during a call")
            self._answer(
                delivery,
                Outcome.internal_error(
                    exc, stage=Stage.UNKNOWN_OUTCOME, attempts=delivery.attempts
                ),
            )
            await self._settle_period(hold)
            return False
        return await self._conclude(hold, delivery, digest, result)

    async def _begin(self, hold: _Hold[T], delivery: Delivery[T], digest: str) -> Entry | None:
        """The guarded ledger begin; writes the previous record's result and sends its answer.
        ``None`` if it could not run (Redis down, lease lost, epoch moved): nothing written."""
        if not delivery.claim:
            delivery.claim = f"{self._claim_prefix}:{next(self._claims)}"
        lease = hold.lease
        previous = hold.unrecorded
        sent = time.monotonic()
        try:
            begun = await self._ledger.begin_guarded(
                self._guard(hold),
                delivery.tenant.key,
                delivery.event_id,
                digest,
                claim=delivery.claim,
                after=previous.settlement if previous is not None else None,
            )
        except RedisError as exc:  # nothing was sent; the previous write is redone
            await self._redis_down("ledger", exc)
            return None
        except (LeaseLost, EpochMovedError):
            lease.lost = True
            log.error(
                "tenant lock lost before a call; re-acquiring", extra={"tenant": lease.tenant}
            )
            return None
        self.redis_ok = True
        lease.valid_until = max(lease.valid_until, sent + self._locks.ttl_ms / 1000)
        if previous is not None:
            hold.unrecorded = None
            self._deliver_unrecorded(previous, begun.previous_written)
        return begun.entry

    async def _conclude(
        self, hold: _Hold[T], delivery: Delivery[T], digest: str, result: Concluded | None
    ) -> bool | None:
        tenant, claim = delivery.tenant.key, delivery.claim
        withdraw = Settlement(tenant, delivery.event_id, digest, delivery.attempts, False, claim)
        if result is None:  # not sent this time: breaker open, lease short, or withdrawn
            hold.settled = True
            if not hold.lease.usable(self._call_margin_s) and not delivery.withdrawn:
                log.warning(
                    "lease too short to start a call; re-acquiring the lock",
                    extra={"tenant": tenant, "needed_s": self._call_margin_s},
                )
            written = await self._settle(withdraw, hold)
            if delivery.withdrawn or not written:
                self._on_dropped([delivery.ticket])
                return False
            return None
        if isinstance(result, Unknown):
            self._answer(
                delivery,
                _unknown(
                    f"{result.reason}; the record may or may not be in Sage — not resent",
                    delivery.attempts,
                ),
            )
            await self._settle_period(hold)
            return False
        hold.settled = True
        if isinstance(result, Delivered):
            outcome = Outcome.success(delivery.attempts)
            delivered = Settlement(
                tenant, delivery.event_id, digest, delivery.attempts, True, claim
            )
            hold.unrecorded = _Unrecorded(delivered, delivery.ticket, outcome)
            return True
        if isinstance(result, Rejected):
            outcome = Outcome.failure(Stage.CONNECTOR, result.message, attempts=delivery.attempts)
        else:
            outcome = Outcome.failure(Stage.CONNECTOR, result.reason, attempts=delivery.attempts)
        hold.unrecorded = _Unrecorded(withdraw, delivery.ticket, outcome)
        return True

    async def _call(self, lease: Lease, delivery: Delivery[T], payload: bytes) -> Concluded | None:
        """Call, retrying only what was certainly not processed (:mod:`service.lanes.retry`).
        ``None`` if no call could start: the breaker opened, the lease no longer outlasts a
        call, or the record was withdrawn."""

        async def attempt() -> CallResult | None:
            if delivery.withdrawn or not lease.usable(self._call_margin_s):
                return None
            delivery.attempts += 1
            return await self._post(delivery.tenant, delivery.endpoint, payload, fence=lease.fence)

        return await call_with_retries(
            attempt,
            self._breakers.for_tenant(delivery.tenant.key),
            self._retries,
            made=delivery.attempts,
        )

    async def _settle_period(self, hold: _Hold[T]) -> None:
        """After an unknown outcome: no call for ``settle_s``, the lock kept (and renewed)."""
        log.warning(
            "unknown outcome: no call for this tenant during the settle period",
            extra={"tenant": hold.lease.tenant, "settle_s": self._policy.settle_s},
        )
        await asyncio.sleep(self._policy.settle_s)
        hold.settled = hold.lease.usable()  # a lease lost meanwhile: the next holder waits

    async def _record_last(self, hold: _Hold[T]) -> None:
        """Write the hold's last result (no next begin carries it) and send its answer."""
        unrecorded = hold.unrecorded
        if unrecorded is None:
            return
        hold.unrecorded = None
        written = await self._settle(unrecorded.settlement, hold)
        self._deliver_unrecorded(unrecorded, written)

    def _deliver_unrecorded(self, unrecorded: _Unrecorded[T], written: bool) -> None:
        ticket = unrecorded.ticket
        if written:
            self._sink([(ticket, unrecorded.outcome)])
        else:
            log.warning(
                "another replica already reported this record in doubt; its verdict stands",
                extra={"event_id": unrecorded.settlement.event_id},
            )
            self._on_dropped([ticket])

    def _guard(self, hold: _Hold[T]) -> Guard:
        lease = hold.lease
        return Guard(
            self._locks.keys(lease.tenant),
            lease.owner,
            self._locks.ttl_ms,
            lease.fence,
            hold.settled,
        )

    async def _settle(self, settlement: Settlement, hold: _Hold[T]) -> bool:
        """Record a result after the call. Redis trouble here means retry the write, never the
        call: the outcome is known, only its bookkeeping is pending. Never raises RedisError.
        ``False`` if another process had reported the record in doubt meanwhile."""
        while True:
            try:
                written = await self._ledger.settle(settlement, self._guard(hold))
            except RedisError as exc:
                await self._redis_down("ledger write", exc)
                continue
            self.redis_ok = True
            return written

    def _answer(self, delivery: Delivery[T], outcome: Outcome) -> None:
        self._sink([(delivery.ticket, outcome)])

    async def _release(self, lease: Lease, *, settled: bool) -> None:
        # On Redis trouble the lock expires by itself; nobody else can take it meanwhile.
        with suppress(RedisError):
            await self._locks.release(lease, settled=settled)

    async def _redis_down(self, step: str, exc: Exception) -> None:
        if self.redis_ok:
            log.error(
                "Redis unreachable: serial lane paused",
                extra={"step": step, "error": type(exc).__name__},
            )
        self.redis_ok = False
        await asyncio.sleep(self._policy.redis_retry_s)


def _unknown(message: str, attempts: int) -> Outcome:
    return Outcome.failure(Stage.UNKNOWN_OUTCOME, message, attempts=attempts)


def _cannot_prepare(exc: Exception) -> Outcome:
    return Outcome.failure(
        Stage.VALIDATION,
        f"the record cannot be encoded for the Cloud Connector ({type(exc).__name__}: {exc}); "
        "nothing was sent",
    )
