"""Tenant lock behaviour against the real Redis."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from redis.asyncio import Redis

from service.locks import TenantLocks
from tests.support.waiting import until


@pytest.fixture
async def redis(redis_url: str):
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def locks_for(redis: Redis, prefix: str, ttl_s: float = 5.0) -> TenantLocks:
    return TenantLocks(redis, prefix, ttl_s)


async def test_second_acquirer_is_refused_while_held(redis, redis_prefix: str) -> None:
    a, b = locks_for(redis, redis_prefix), locks_for(redis, redis_prefix)
    held = await a.try_acquire("1001:ACME")
    assert held is not None
    assert await b.try_acquire("1001:ACME") is None
    assert await b.try_acquire("2002:BETA") is not None  # other tenants are independent


async def test_only_the_owner_can_release(redis, redis_prefix: str) -> None:
    locks = locks_for(redis, redis_prefix)
    held = await locks.try_acquire("t")
    assert held is not None
    impostor = dataclasses.replace(held, owner="not-the-owner")
    assert await locks.release(impostor) is False
    assert await locks.try_acquire("t") is None
    assert await locks.release(held) is True
    assert await locks.try_acquire("t") is not None


async def test_lock_expires_when_the_holder_vanishes(redis, redis_prefix: str) -> None:
    locks = locks_for(redis, redis_prefix, ttl_s=0.3)
    assert await locks.try_acquire("t") is not None
    loop = asyncio.get_running_loop()
    started = loop.time()
    held = await locks.acquire("t", wait_s=5)
    assert held is not None
    assert 0.1 < loop.time() - started < 2.0


async def test_renewal_keeps_a_slow_call_locked(redis, redis_prefix: str) -> None:
    locks = locks_for(redis, redis_prefix, ttl_s=0.3)
    held = await locks.try_acquire("t")
    assert held is not None
    async with locks.kept_alive(held):
        # Three TTLs pass while the "call" runs; without renewal the lock would be free.
        for _ in range(3):
            assert await locks.acquire("t", wait_s=0.3) is None
    assert not held.lost
    assert await locks.release(held)


async def test_fencing_numbers_strictly_increase(redis, redis_prefix: str) -> None:
    locks = locks_for(redis, redis_prefix)
    fences = []
    for _ in range(5):
        held = await locks.try_acquire("t")
        assert held is not None
        fences.append(held.fence)
        await locks.release(held)
    assert fences == sorted(set(fences)) and len(fences) == 5
    # Even if Redis forgot everything (restart without persistence), numbers keep growing.
    await redis.delete(f"{redis_prefix}:fence:t")
    held = await locks.try_acquire("t")
    assert held is not None and held.fence > fences[-1]


async def test_waiter_wakes_on_release_not_on_expiry(redis, redis_prefix: str) -> None:
    holder, waiter = locks_for(redis, redis_prefix, 30), locks_for(redis, redis_prefix, 30)
    held = await holder.try_acquire("t")
    assert held is not None
    blocked = asyncio.Event()
    waiter.on_wait = lambda name: blocked.set()
    waiting = asyncio.create_task(waiter.acquire("t", wait_s=20))
    await asyncio.wait_for(blocked.wait(), 5)
    loop = asyncio.get_running_loop()
    released_at = loop.time()
    await holder.release(held)
    # The lock would expire only after 30 s: taking it within a second proves the waiter was
    # woken by the release notification.
    taken = await asyncio.wait_for(waiting, 5)
    assert taken is not None
    assert loop.time() - released_at < 1.0
    await holder.aclose()
    await waiter.aclose()


async def test_a_lease_runs_out_by_the_local_clock_unless_renewed(redis, redis_prefix: str) -> None:
    """The serial lane starts a call only under a lease it knows is current: after a Redis
    stall longer than the TTL, ``usable()`` is already false before any renewal reports."""
    locks = locks_for(redis, redis_prefix, ttl_s=0.5)
    held = await locks.try_acquire("t")
    assert held is not None and held.usable()
    first_lease = held.valid_until
    assert await locks.renew(held)
    assert held.valid_until > first_lease

    async def ran_out() -> bool:
        return not held.usable()

    await until(ran_out, 5, "the lease to run out without renewal")
    assert not held.lost  # nobody told us: the clock did
