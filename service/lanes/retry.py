"""Calling the Cloud Connector until it answers: the one breaker-aware retry loop of both lanes.

A failed call is retried after an exponential backoff with full jitter (replicas that failed
together do not retry together), or after the server's ``Retry-After`` if that is longer (a 429
or 503 says when it will take calls again; the client caps it), up to ``max_attempts`` failures
while the tenant's Connector is deemed healthy. A failure that finds the tenant's breaker open
is not the record's fault and uses none of that budget: the loop waits for the breaker, or, for
a caller that must not wait while holding the tenant's lock, ends without a verdict. Every
answer counts for the breaker (:class:`Delivered` or :class:`Rejected` as a success, anything
else as a failure).

The lanes differ in what may be sent again: an :class:`Unknown` outcome may have been processed,
so it is retried for idempotent upserts (master data) and never for transactions.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from service.connector.results import CallResult, Delivered, Rejected, Retryable, Unknown
from service.lanes.breaker import Breaker


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float
    cap_s: float = 30.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed ``attempt`` (1-based)."""
        ceiling = min(self.cap_s, self.base_s * (2 ** (attempt - 1)))
        return (rng or random).uniform(0, ceiling)


@dataclass(frozen=True, slots=True)
class Retries:
    """How a lane retries."""

    max_attempts: int
    """Failures allowed while the breaker stays closed."""
    backoff: Backoff
    retry_unknown: bool
    """Send again after an :class:`Unknown` outcome: only where a resend is harmless."""
    wait_out_outage: bool
    """While the tenant's breaker is open, wait for it before each attempt; otherwise end with
    ``None`` once a failure finds it open, so the caller waits holding nothing."""


@dataclass(frozen=True, slots=True)
class GaveUp:
    """The retries ran out. ``attempts`` counts every call that carried the records, including
    those made while the breaker was open and those made before this loop ran."""

    attempts: int
    last: Retryable | Unknown

    @property
    def reason(self) -> str:
        return f"gave up after {self.attempts} attempts: {self.last.reason}"


Concluded = Delivered | Rejected | Unknown | GaveUp
"""How a retried call ended (:class:`Unknown` only where it is not retried)."""

Attempt = Callable[[], Awaitable[CallResult | None]]
"""Makes one call, or returns ``None`` when none may start now."""

OnRetry = Callable[[int, Retryable | Unknown, float], None]
"""Told of each retry before its wait: failures so far, the last one, the delay in seconds."""


async def call_with_retries(
    attempt: Attempt,
    breaker: Breaker,
    retries: Retries,
    *,
    made: int = 0,
    on_retry: OnRetry | None = None,
) -> Concluded | None:
    """Call until the Connector answers or ``retries`` say stop.

    ``None`` when no verdict came: ``attempt`` could not start a call (the caller's records
    were withdrawn, its lease runs short), or the breaker opened (or the tenant was paused) and
    ``retries`` say not to wait for it. ``made`` is the number of calls these records were
    already in (an earlier lock hold, the array before it was split), so that :class:`GaveUp`
    reports the real count."""
    attempts = made
    failures = 0
    while True:
        if retries.wait_out_outage:
            await breaker.admit()
        elif breaker.paused:
            return None  # an operator's pause: the caller waits for it holding nothing
        result = await attempt()
        if result is None:
            return None
        attempts += 1
        if isinstance(result, (Delivered, Rejected)):
            breaker.success()
            return result
        # An unknown outcome is a sign of trouble too; a refused token fails every call alike.
        told_wait = result.retry_after_s if isinstance(result, Retryable) else None
        breaker.failure(
            at_once=isinstance(result, Retryable) and result.token_refused,
            not_before_s=told_wait,
        )
        if isinstance(result, Unknown) and not retries.retry_unknown:
            return result
        if breaker.is_open:
            if retries.wait_out_outage:
                continue
            return None
        failures += 1
        if failures >= retries.max_attempts:
            return GaveUp(attempts, result)
        delay = max(retries.backoff.delay(failures), told_wait or 0.0)
        if on_retry is not None:
            on_retry(failures, result, delay)
        await asyncio.sleep(delay)
