"""Waiting for a condition with a deadline — the only kind of waiting tests do."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

POLL_S = 0.05


async def until(condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    """Re-check ``condition`` until true; AssertionError naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(POLL_S)


async def throughout(
    invariant: Callable[[], Awaitable[bool]], duration_s: float, what: str
) -> None:
    """Check ``invariant`` repeatedly for ``duration_s`` (the length of an injected fault);
    AssertionError naming ``what`` the first time it is false."""
    deadline = time.monotonic() + duration_s
    while time.monotonic() < deadline:
        assert await invariant(), f"{what} stopped holding"
        await asyncio.sleep(POLL_S)
