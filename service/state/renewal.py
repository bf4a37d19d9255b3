"""Keeping a lease alive while a body runs: renewed every third of its TTL, and no longer once
the body has ended.

The renewals end by a flag the loop reads before every renewal as well as by cancelling the
loop. A cancel can be lost inside the Redis client: on Python 3.11 a cancel that meets the
socket timeout's expiry becomes a timeout, which redis-py retries. A loop kept alive that way
renewed a lease nobody used, for minutes: the company's lock held by a replica that made no
call (``tests/integration/state/test_locks.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import TypeVar

from service.tenants import TenantKey

log = logging.getLogger("service.state.locks")

L = TypeVar("L")


@asynccontextmanager
async def renewed_while(
    renew: Callable[[L], Awaitable[bool]], lease: L, interval_s: float, tenant: TenantKey
) -> AsyncIterator[L]:
    """``renew(lease)`` every ``interval_s`` while the body runs, until it says the lease is
    gone; Redis trouble is logged and tried again (the lease runs out meanwhile)."""
    ended = asyncio.Event()
    task = asyncio.create_task(_renew_loop(renew, lease, interval_s, tenant, ended))
    try:
        yield lease
    finally:
        ended.set()
        task.cancel()
        # Not ``await task`` under a suppressed CancelledError: a cancel of the holder itself,
        # arriving meanwhile, would be swallowed too.
        await asyncio.wait({task})


async def _renew_loop(
    renew: Callable[[L], Awaitable[bool]],
    lease: L,
    interval_s: float,
    tenant: TenantKey,
    ended: asyncio.Event,
) -> None:
    while True:
        with suppress(TimeoutError):
            await asyncio.wait_for(ended.wait(), interval_s)
        if ended.is_set():
            return
        try:
            if not await renew(lease):
                log.error("tenant lock lost during a hold", extra={"tenant": tenant})
                return
        except Exception as exc:
            log.warning("lock renewal failed", extra={"error": type(exc).__name__})
