"""The ``lock`` case: the tenant lock itself, against real Redis.

* **Overhead**: one uncontended ``acquire`` + ``release`` round trip of
  :class:`service.state.locks.TenantLocks` — what the lock adds to every transactional call.
* **Hand-off**: several contender *processes* (like replicas), each with its own Redis
  clients, take turns on one lock: hold it for ``hold_ms`` (a sandbox call), release, pause
  1 ms, try again. A hand-off is the time from one holder's ``release()`` returning to a
  waiter's ``acquire()`` returning — counted only when that waiter had called ``acquire()``
  before the release, so it was woken by the pub/sub notification, not by its own retry.
  ``time.monotonic`` is the system-wide monotonic clock, comparable across processes.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

from redis.asyncio import Redis

from bench.feed import percentile
from service.dev.devstack import forget_keys
from service.state.epoch import Epoch
from service.state.locks import TenantLocks
from service.tenants import TenantKey

LOCKED_TENANT = TenantKey("1001", "ACME")


@dataclass(frozen=True)
class LockFigures:
    overhead_p50_ms: float
    overhead_p99_ms: float
    overhead_samples: int
    handoff_p50_ms: float
    handoff_p99_ms: float
    handoff_max_ms: float
    handoff_samples: int
    contenders: int
    hold_ms: float


async def _overhead(redis_url: str, prefix: str, iterations: int) -> list[float]:
    redis = Redis.from_url(redis_url)
    epoch = Epoch(redis, prefix, 10.0)
    await epoch.establish()
    locks = TenantLocks(redis, prefix, ttl_s=10.0, epoch=epoch)
    try:
        for _ in range(min(100, iterations)):  # warm up: scripts loaded, listener subscribed
            held = await locks.acquire(LOCKED_TENANT, 1.0)
            assert held is not None
            await locks.release(held, quiet=True)
        samples = []
        for _ in range(iterations):
            started = time.perf_counter()
            held = await locks.acquire(LOCKED_TENANT, 1.0)
            assert held is not None
            await locks.release(held, quiet=True)
            samples.append((time.perf_counter() - started) * 1000)
        return samples
    finally:
        await locks.aclose()
        await redis.aclose()


Turn = tuple[int, float, float, float]
"""(contender, acquire() called, acquire() returned, release() returned), monotonic seconds."""


async def _contend(
    index: int, redis_url: str, prefix: str, start_at: float, stop_at: float, hold_s: float
) -> list[Turn]:
    redis = Redis.from_url(redis_url)
    epoch = Epoch(redis, prefix, 10.0)
    await epoch.establish()
    locks = TenantLocks(redis, prefix, ttl_s=10.0, epoch=epoch)
    turns: list[Turn] = []
    try:
        await locks.start_listening()
        await redis.ping()
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        while time.monotonic() < stop_at:
            called = time.monotonic()
            held = await locks.acquire(LOCKED_TENANT, 5.0)
            if held is None:
                continue
            acquired = time.monotonic()
            await asyncio.sleep(hold_s)
            await locks.release(held, quiet=True)
            turns.append((index, called, acquired, time.monotonic()))
            await asyncio.sleep(0.001)
    finally:
        await locks.aclose()
        await redis.aclose()
    return turns


def _contender(
    index: int, redis_url: str, prefix: str, start_at: float, stop_at: float, hold_s: float
) -> list[Turn]:
    return asyncio.run(_contend(index, redis_url, prefix, start_at, stop_at, hold_s))


def handoffs_ms(turns: list[Turn]) -> list[float]:
    """Release-to-acquisition gaps where the next holder was already waiting."""
    ordered = sorted(turns, key=lambda t: t[2])
    gaps = []
    for previous, following in itertools.pairwise(ordered):
        if following[0] != previous[0] and following[1] < previous[3]:
            gaps.append((following[2] - previous[3]) * 1000)
    return gaps


async def measure_locks(
    redis_url: str, iterations: int, duration_s: float, contenders: int = 3, hold_ms: float = 5.0
) -> LockFigures:
    prefix = f"bench-locks-{uuid.uuid4().hex[:8]}"
    try:
        overhead = await _overhead(redis_url, prefix, iterations)
        start_at = time.monotonic() + 3.0  # spawned interpreters import redis + service first
        stop_at = start_at + duration_s
        loop = asyncio.get_running_loop()
        with ProcessPoolExecutor(contenders, mp_context=get_context("spawn")) as pool:
            futures = [
                loop.run_in_executor(
                    pool, _contender, i, redis_url, prefix, start_at, stop_at, hold_ms / 1000
                )
                for i in range(contenders)
            ]
            results = await asyncio.gather(*futures)
        gaps = handoffs_ms([turn for turns in results for turn in turns])
    finally:
        await forget_keys(redis_url, prefix)
    return LockFigures(
        overhead_p50_ms=percentile(overhead, 50),
        overhead_p99_ms=percentile(overhead, 99),
        overhead_samples=len(overhead),
        handoff_p50_ms=percentile(gaps, 50),
        handoff_p99_ms=percentile(gaps, 99),
        handoff_max_ms=max(gaps, default=float("nan")),
        handoff_samples=len(gaps),
        contenders=contenders,
        hold_ms=hold_ms,
    )
