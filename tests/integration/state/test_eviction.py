"""The eviction watch against a real, throw-away Redis: a policy changed while running, and the
operator's allowance."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from service.dev.devstack import start_redis
from service.state.epoch import Epoch
from service.state.eviction import EvictionWatch, RedisMayEvict


@pytest.fixture
async def private() -> AsyncIterator[Redis]:
    process = start_redis()
    client = Redis.from_url(f"redis://127.0.0.1:{process.port}/0")
    yield client
    await client.aclose()
    process.stop()


def watch(redis: Redis, *, allow: bool) -> EvictionWatch:
    return EvictionWatch(redis, Epoch(redis, "test", quarantine_s=1), allow_eviction=allow)


async def test_a_policy_turned_evicting_while_running_is_not_acceptable(private: Redis) -> None:
    guard = watch(private, allow=False)
    await guard.refuse_unless_allowed()  # noeviction: starts
    assert guard.acceptable and guard.latest is not None
    assert guard.latest.case == "noeviction"
    await private.config_set("maxmemory-policy", "volatile-lru")
    await guard.check()
    assert guard.latest.case == "evicting"
    assert not guard.acceptable, "readiness must say so"


async def test_the_allowance_accepts_an_evicting_policy(private: Redis) -> None:
    await private.config_set("maxmemory-policy", "allkeys-lfu")
    with pytest.raises(RedisMayEvict, match="maxmemory-policy is allkeys-lfu"):
        await watch(private, allow=False).refuse_unless_allowed()
    allowed = watch(private, allow=True)
    await allowed.refuse_unless_allowed()
    assert allowed.acceptable
