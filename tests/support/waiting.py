"""Waiting for a condition with a deadline — the only kind of waiting tests do. A missed
deadline fails the test (AssertionError), naming what it waited for."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from service.dev import waiting


async def until(condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    """Re-check ``condition`` until true; AssertionError naming ``what`` at the deadline."""
    try:
        await waiting.until(condition, timeout_s, what)
    except TimeoutError as exc:
        raise AssertionError(str(exc)) from None


async def throughout(
    invariant: Callable[[], Awaitable[bool]], duration_s: float, what: str
) -> None:
    """Check ``invariant`` repeatedly for ``duration_s`` (the length of an injected fault);
    AssertionError naming ``what`` the first time it is false."""
    deadline = time.monotonic() + duration_s
    while time.monotonic() < deadline:
        assert await invariant(), f"{what} stopped holding"
        await asyncio.sleep(waiting.POLL_S)
