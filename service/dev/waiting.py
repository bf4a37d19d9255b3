"""Waiting for a condition with a deadline: the only kind of waiting the dev tools do."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

POLL_S = 0.05


async def until(
    condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str, poll_s: float = POLL_S
) -> None:
    """Re-check ``condition`` until it is true; :class:`TimeoutError` naming ``what`` at the
    deadline. An exception from ``condition`` (a process that died) ends the wait at once."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(poll_s)
