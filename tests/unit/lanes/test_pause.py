"""The operator's pause gate, and how the breakers and the retry loop honour it."""

from __future__ import annotations

import asyncio

from service.connector.results import Delivered
from service.lanes.breaker import Breakers
from service.lanes.pause import PauseGate
from service.lanes.retry import Backoff, Retries, call_with_retries
from service.tenants import TenantKey
from tests.support.waiting import throughout

ACME, BETA = TenantKey("1001", "ACME"), TenantKey("2002", "BETA")


async def test_admission_waits_while_paused_and_other_tenants_pass() -> None:
    changes: list[tuple[TenantKey, bool]] = []
    gate = PauseGate(on_change=lambda tenant, paused: changes.append((tenant, paused)))
    breakers = Breakers(3, 0.05, pauses=gate)
    gate.set_paused({BETA})
    waiting = asyncio.create_task(breakers.for_tenant(BETA).admit())
    await asyncio.wait_for(breakers.for_tenant(ACME).admit(), 1)

    async def still_waiting() -> bool:
        return not waiting.done()

    await throughout(still_waiting, 0.2, "the paused tenant's admission waiting")
    assert breakers.open_tenants() == [], "a pause is not an outage"
    gate.set_paused(set())
    await asyncio.wait_for(waiting, 1)
    assert changes == [(BETA, True), (BETA, False)]


async def test_a_caller_that_must_not_wait_gets_no_call_and_no_verdict() -> None:
    gate = PauseGate()
    gate.set_paused({BETA})
    calls = 0

    async def attempt() -> Delivered:
        nonlocal calls
        calls += 1
        return Delivered({"response": "SUCCESS"})

    retries = Retries(3, Backoff(0.01), retry_unknown=False, wait_out_outage=False)
    breaker = Breakers(3, 0.05, pauses=gate).for_tenant(BETA)
    assert await call_with_retries(attempt, breaker, retries) is None
    assert calls == 0
