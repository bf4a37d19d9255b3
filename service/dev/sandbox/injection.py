"""The faults a sandbox injects into a call on its way to Sage: latency, slow processing, a hang
until released, a 500, an ERROR envelope. Each is rolled against its rate with the sandbox's
seeded random source, so a run with a given ``seed`` injects the same faults in the same order.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

from service.dev.sandbox.faults import Faults
from service.dev.sandbox.responses import CallResponse, error


class Injector:
    """Rolls the faults' rates and holds the hung requests until they are released."""

    def __init__(self, seed: int | None) -> None:
        self._rng = random.Random(seed)
        self._release = asyncio.Event()

    def roll(self, rate: float) -> bool:
        """Whether a fault of this rate strikes this call (1 always, 0 never)."""
        return rate > 0 and (rate >= 1 or self._rng.random() < rate)

    def release_hangs(self) -> None:
        """Wake every hung request (they answer 503); later hangs wait on a fresh event."""
        self._release.set()
        self._release = asyncio.Event()

    async def before_sage(
        self, faults: Faults, injected: dict[str, int], received_s: float
    ) -> CallResponse | None:
        """Delay the call or answer it instead of Sage, as ``faults`` ask; counts each
        injected fault in ``injected``. ``None``: the call goes on to Sage. ``received_s``:
        when the call arrived (``time.monotonic``), from which its latency runs."""
        if faults.latency_ms:
            await asyncio.sleep(wait_left(received_s, faults.latency_ms))
        if self.roll(faults.slow_rate):
            injected["slow"] += 1
            await asyncio.sleep(faults.slow_ms / 1000)
        if self.roll(faults.hang_rate):
            injected["hang"] += 1
            await self._hang(faults.hang_s)
            return 503, error("sandbox: hung request released")
        if self.roll(faults.fail_rate):
            injected["fail"] += 1
            return 500, error("sandbox: injected server error")
        if self.roll(faults.error_rate):
            injected["error"] += 1
            return 200, error("sandbox: injected ERROR envelope")
        return None

    async def _hang(self, hang_s: float) -> None:
        """Wait until released or ``hang_s`` passes. A client that gives up changes nothing: a
        real server does not notice, and the call keeps occupying its tenant meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), hang_s)


def wait_left(received_s: float, latency_ms: int, now_s: float | None = None) -> float:
    """Seconds still to wait so that a call answers ``latency_ms`` after it arrived: the
    latency is the Connector's whole time for a call, its own handling included, as the
    benchmark's ideal (1/latency calls a second) assumes; sleeping the full latency after
    reading the request would add the sandbox's handling to every call."""
    now = time.monotonic() if now_s is None else now_s
    return max(0.0, received_s + latency_ms / 1000 - now)
