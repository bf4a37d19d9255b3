"""One company's way to the Connector in the serial lane: its breaker, then its lock.

The scheduler builds a gate for each company's worker from what the lane was given (the
breakers, which also hold an operator's pause, and the tenant locks), with the company's breaker
already chosen. The worker then asks for "the lock" and never names its tenant again. Waits for
an outage or a pause hold no lock; a shutdown ends every wait (a lock granted then expires).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Generic

from service.errors import StateUnavailable
from service.lanes import T
from service.lanes.breaker import Breaker
from service.lanes.serial.hold import Bookkeeping
from service.lanes.serial.ports import SerialLocks
from service.state.locks import Lease
from service.tenants import TenantKey

log = logging.getLogger("service.lanes.serial")


class CompanyGate(Generic[T]):
    """The company's breaker and lock, as one wait (see the module docstring)."""

    def __init__(
        self,
        tenant: TenantKey,
        breaker: Breaker,
        locks: SerialLocks,
        books: Bookkeeping[T],
        *,
        lock_wait_s: float,
        on_lock_wait: Callable[[float], None],
    ) -> None:
        """``breaker``: the company's own; ``lock_wait_s``: how long one wait for the lock
        lasts before it is logged and begun again; ``on_lock_wait`` gets each granted wait."""
        self._tenant = tenant
        self._breaker = breaker
        self._locks = locks
        self._books = books
        self._lock_wait_s = lock_wait_s
        self._on_lock_wait = on_lock_wait

    async def enter(self) -> Lease | None:
        """Wait for the breaker (and the operator's pause), then the lock. ``None`` if no lock
        came of this wait: the lane is stopping, Redis is unreachable (the lane is paused for a
        moment), or the lock stayed taken for ``lock_wait_s``. The caller tries again."""
        books = self._books
        if not await books.unless_stopping(_admitted(self._breaker)):
            return None
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            lease = await books.unless_stopping(
                self._locks.acquire(self._tenant, self._lock_wait_s)
            )
        except StateUnavailable as exc:
            await books.redis_down("acquire", exc)
            return None
        books.redis_back()
        if lease is None:
            if not books.stopping.is_set():
                log.warning(
                    "tenant lock still unavailable, waiting on", extra={"tenant": self._tenant}
                )
            return None
        self._on_lock_wait(loop.time() - started)
        return lease

    def kept_alive(self, lease: Lease) -> AbstractAsyncContextManager[Lease]:
        """The lease renewed while a hold serves the company's records."""
        return self._locks.kept_alive(lease)


async def _admitted(breaker: Breaker) -> bool:
    await breaker.admit()
    return True
