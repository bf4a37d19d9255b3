"""Circuit breaker per tenant: when a Cloud Connector stops answering, stop hammering it.

Each tenant's Connector sits beside its own on-premise Sage server, so one tenant's outage must
not stall the others. After ``threshold`` consecutive retryable failures (connect errors, 5xx,
429, timeouts) the tenant's breaker opens: its records wait — they neither burn their retry
budget nor end up as dead letters — while the rest flow. After a cool-down one probe call is
let through (half-open); success closes the breaker and everyone waiting goes, failure reopens
it with a longer cool-down (doubling, capped).

An operator's pause (:mod:`service.lanes.pause`) holds a tenant's calls the same way: the
breakers are given the :class:`~service.lanes.pause.PauseGate`, and :meth:`Breaker.admit`
waits while the tenant is paused, whatever the breaker's own state.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from service.lanes.pause import PauseGate
from service.tenants import TenantKey


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(eq=False)
class Breaker:
    threshold: int
    base_cooldown_s: float
    max_cooldown_s: float = 30.0
    state: State = State.CLOSED
    failures: int = 0
    cooldown_s: float = 0.0
    opened_at: float = 0.0
    on_change: Callable[[State], None] | None = None
    pauses: PauseGate | None = None
    tenant: TenantKey | None = None
    """With ``pauses``: whose pause holds this breaker's admissions."""
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _probe_granted_at: float | None = None

    def success(self) -> None:
        self.failures = 0
        self._probe_granted_at = None
        if self.state is not State.CLOSED:
            self.cooldown_s = 0.0
            self._set(State.CLOSED)

    def failure(self, *, at_once: bool = False, not_before_s: float | None = None) -> None:
        """A retryable failure; may open (or re-open) the breaker. ``at_once``: open it now,
        whatever the count (a refused token fails every call until it is replaced);
        ``not_before_s``: the server's ``Retry-After``, which an opening's cool-down lasts at
        least, so the probe does not come before the server said it would take calls."""
        self._probe_granted_at = None
        self.failures += 1
        if self.state is State.HALF_OPEN or (
            self.state is State.CLOSED and (at_once or self.failures >= self.threshold)
        ):
            self.cooldown_s = min(
                self.max_cooldown_s, max(self.base_cooldown_s, self.cooldown_s * 2)
            )
            self.cooldown_s = max(self.cooldown_s, not_before_s or 0.0)
            self.opened_at = time.monotonic()
            self._set(State.OPEN)

    @property
    def is_open(self) -> bool:
        return self.state is not State.CLOSED

    @property
    def paused(self) -> bool:
        """An operator paused this tenant: no call may start, whatever :attr:`state` says."""
        return (
            self.pauses is not None and self.tenant is not None and self.pauses.paused(self.tenant)
        )

    async def admit(self) -> None:
        """Return when a call may be made: at once while closed; after the cool-down as the
        single probe; otherwise wait for the probe's verdict.

        A probe's grant lapses after one cool-down: whoever was admitted may end up making no
        call (the serial lane can find its record already in the ledger), and a verdict that
        never comes must not keep the tenant waiting for ever. A paused tenant waits for its
        resumption first."""
        while True:
            if self.paused:
                assert self.pauses is not None and self.tenant is not None
                await self.pauses.until_resumed(self.tenant)
                continue
            if self.state is State.CLOSED:
                return
            now = time.monotonic()
            if self.state is State.OPEN:
                remaining = self.opened_at + self.cooldown_s - now
                if remaining > 0:
                    await self._wait(remaining)
                    continue
                self._set(State.HALF_OPEN)
            granted = self._probe_granted_at
            if granted is None or now - granted >= self.cooldown_s:
                self._probe_granted_at = now
                return
            await self._wait(granted + self.cooldown_s - now)

    async def _wait(self, at_most_s: float | None) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), at_most_s)

    def _set(self, state: State) -> None:
        self.state = state
        self._changed.set()
        if self.on_change is not None:
            self.on_change(state)


class Breakers:
    """One breaker per tenant, created on first use."""

    def __init__(
        self,
        threshold: int,
        cooldown_s: float,
        on_change: Callable[[TenantKey, State], None] = lambda tenant, state: None,
        pauses: PauseGate | None = None,
    ) -> None:
        """``on_change`` is told whenever a tenant's breaker changes state (metrics, logs);
        ``pauses``, the operator's paused tenants, hold admissions too."""
        self._pauses = pauses
        self._threshold = threshold
        self._cooldown_s = cooldown_s
        self._breakers: dict[TenantKey, Breaker] = {}
        self._on_change = on_change

    def for_tenant(self, tenant: TenantKey) -> Breaker:
        breaker = self._breakers.get(tenant)
        if breaker is None:
            breaker = self._breakers[tenant] = Breaker(
                self._threshold,
                self._cooldown_s,
                on_change=functools.partial(self._changed, tenant),
                pauses=self._pauses,
                tenant=tenant,
            )
        return breaker

    def _changed(self, tenant: TenantKey, state: State) -> None:
        self._on_change(tenant, state)

    def open_tenants(self) -> list[TenantKey]:
        return [tenant for tenant, b in self._breakers.items() if b.is_open]
