"""The per-tenant circuit breaker's states, with the clock it actually uses."""

from __future__ import annotations

import asyncio

from service.lanes.breaker import Breaker, State


async def test_opens_after_the_threshold_and_closes_on_a_successful_probe() -> None:
    breaker = Breaker(threshold=2, base_cooldown_s=0.05)
    breaker.failure()
    assert breaker.state is State.CLOSED
    breaker.failure()
    assert breaker.state is State.OPEN
    await asyncio.wait_for(breaker.admit(), 2)  # the probe, after the cool-down
    assert breaker.state is State.HALF_OPEN
    breaker.success()
    assert breaker.state is State.CLOSED


async def test_a_probe_that_never_reports_does_not_block_the_tenant_for_ever() -> None:
    breaker = Breaker(threshold=1, base_cooldown_s=0.05)
    breaker.failure()
    await asyncio.wait_for(breaker.admit(), 2)  # granted, and then no call is made
    # The next caller gets its own probe once the first grant has lapsed.
    await asyncio.wait_for(breaker.admit(), 2)
    assert breaker.state is State.HALF_OPEN


async def test_a_failed_probe_reopens_with_a_longer_cool_down() -> None:
    breaker = Breaker(threshold=1, base_cooldown_s=0.05)
    breaker.failure()
    first = breaker.cooldown_s
    await asyncio.wait_for(breaker.admit(), 2)
    breaker.failure()
    assert breaker.state is State.OPEN and breaker.cooldown_s == 2 * first
