"""Tenants an operator paused: every lane waits before calling a paused tenant's Connector.

A pause (``sagebridge tenant pause C/CO``, for Sage maintenance or a month-end close) is held
in Redis and shared by every replica; :meth:`PauseGate.set_paused` is told the current set by a
periodic read (see :mod:`service.state.pauses`). The gate itself is plain asyncio, so the lanes
wait on it as they wait on an open breaker: a paused tenant's records use none of their retry
budget and are never dead-lettered, the in-flight limit pauses fetching as during an outage,
and other tenants flow. A call already in flight when the pause arrives finishes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection

from service.errors import StateUnavailable
from service.tenants import TenantKey


class PauseGate:
    """The paused tenants, as last read; waiters wake when the set changes."""

    def __init__(
        self, on_change: Callable[[TenantKey, bool], None] = lambda tenant, paused: None
    ) -> None:
        """``on_change`` is told each tenant that became paused (``True``) or resumed."""
        self._paused: frozenset[TenantKey] = frozenset()
        self._changed = asyncio.Event()
        self._on_change = on_change

    def paused(self, tenant: TenantKey) -> bool:
        return tenant in self._paused

    @property
    def tenants(self) -> frozenset[TenantKey]:
        return self._paused

    async def until_resumed(self, tenant: TenantKey) -> None:
        """Return once ``tenant`` is not paused (at once if it is not)."""
        while tenant in self._paused:
            changed = self._changed
            await changed.wait()

    def set_paused(self, tenants: Collection[TenantKey]) -> None:
        """The paused set is now ``tenants``; wakes every waiter if it changed."""
        now = frozenset(tenants)
        if now == self._paused:
            return
        before, self._paused = self._paused, now
        for tenant in sorted(now - before):
            self._on_change(tenant, True)
        for tenant in sorted(before - now):
            self._on_change(tenant, False)
        woken, self._changed = self._changed, asyncio.Event()
        woken.set()

    async def refresh(self, read: Callable[[], Awaitable[Collection[TenantKey]]]) -> bool:
        """Take the paused set from ``read`` (Redis); ``False`` if it could not be read, and
        then the last known set stands: a pause must not lapse because Redis blinked."""
        try:
            self.set_paused(await read())
        except StateUnavailable:
            return False
        return True
