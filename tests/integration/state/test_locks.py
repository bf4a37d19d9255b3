"""Tenant lock behaviour against the real Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from service.state.epoch import Epoch
from service.state.locks import Lease, TenantLocks
from service.tenants import TenantKey
from tests.support.waiting import until

T = ("1001", "ACME")


@pytest.fixture
async def redis(redis_url: str):
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def locks_for(
    redis: Redis,
    prefix: str,
    ttl_s: float = 5.0,
    quarantine_s: float = 5.0,
    on_wait: Callable[[TenantKey], None] = lambda tenant: None,
) -> TenantLocks:
    epoch = Epoch(redis, prefix, quarantine_s)
    await epoch.establish()
    return TenantLocks(redis, prefix, ttl_s, epoch, on_wait=on_wait)


async def test_second_acquirer_is_refused_while_held(redis, redis_prefix: str) -> None:
    a, b = await locks_for(redis, redis_prefix), await locks_for(redis, redis_prefix)
    held = await a.try_acquire(T)
    assert held is not None
    assert await b.try_acquire(T) is None
    assert await b.try_acquire(("2002", "BETA")) is not None  # other tenants are independent


async def test_only_the_owner_can_release(redis, redis_prefix: str) -> None:
    locks = await locks_for(redis, redis_prefix)
    held = await locks.try_acquire(T)
    assert held is not None
    impostor = Lease(held.tenant, "not-the-owner", held.fence, held.valid_until)
    assert await locks.release(impostor, quiet=True) is False
    assert await locks.try_acquire(T) is None
    assert await locks.release(held, quiet=True) is True
    assert await locks.try_acquire(T) is not None


async def test_lock_expires_when_the_holder_vanishes(redis, redis_prefix: str) -> None:
    locks = await locks_for(redis, redis_prefix, ttl_s=0.3)
    assert await locks.try_acquire(T) is not None
    loop = asyncio.get_running_loop()
    started = loop.time()
    held = await locks.acquire(T, wait_s=5)
    assert held is not None
    assert 0.1 < loop.time() - started < 2.0


async def test_renewal_keeps_a_slow_call_locked(redis, redis_prefix: str) -> None:
    # A TTL long enough that renewal (every third of it) survives a loaded CI machine.
    locks = await locks_for(redis, redis_prefix, ttl_s=1.0)
    held = await locks.try_acquire(T)
    assert held is not None
    async with locks.kept_alive(held):
        # Three TTLs pass while the "call" runs; without renewal the lock would be free.
        for _ in range(3):
            assert await locks.acquire(T, wait_s=1.0) is None
    assert not held.lost
    assert await locks.release(held, quiet=True)


class _LosesACancel(TenantLocks):
    """Locks whose renewal swallows one cancellation and then renews anyway: what redis-py
    does when, on Python 3.11, the cancel meets its socket timeout's expiry (the cancel
    becomes a timeout, and its retry runs the command again)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.renewing = asyncio.Event()
        self.renewals = 0

    async def renew(self, lease: Lease) -> bool:
        self.renewals += 1
        if self.renewals == 1:
            self.renewing.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()  # in flight when the hold ends
        return await super().renew(lease)


async def test_a_hold_that_ends_stops_renewing_even_if_a_cancel_is_lost(
    redis, redis_prefix: str
) -> None:
    """Found by tests/system/test_transactional_safety.py (the stopped lock holder): a
    replica kept renewing the company's lock after its hold had ended, for minutes, so no
    replica could call. Ending the hold must end the renewals, however the cancel fares."""
    epoch = Epoch(redis, redis_prefix, 5.0)
    await epoch.establish()
    locks = _LosesACancel(redis, redis_prefix, 0.3, epoch)
    held = await locks.try_acquire(T)
    assert held is not None

    async def hold_until_a_renewal_is_in_flight() -> None:
        async with locks.kept_alive(held):
            await locks.renewing.wait()

    hold = asyncio.create_task(hold_until_a_renewal_is_in_flight())
    # On failure the hold never ends (its renewals go on); the wait only bounds that hang.
    done, _ = await asyncio.wait({hold}, timeout=30)
    assert hold in done, "the hold ended but its lease is still being renewed"
    assert await locks.release(held, quiet=True) is True
    assert await locks.try_acquire(T) is not None


async def test_fencing_numbers_strictly_increase(redis, redis_prefix: str) -> None:
    locks = await locks_for(redis, redis_prefix)
    fences = []
    for _ in range(5):
        held = await locks.try_acquire(T)
        assert held is not None
        fences.append(held.fence)
        await locks.release(held, quiet=True)
    assert fences == sorted(set(fences)) and len(fences) == 5
    # Even if Redis forgot everything (restart without persistence), numbers keep growing.
    await redis.delete(f"{redis_prefix}:fence:1001:ACME")
    held = await locks.try_acquire(T)
    assert held is not None and held.fence > fences[-1]


async def test_waiter_wakes_on_release_not_on_expiry(redis, redis_prefix: str) -> None:
    blocked = asyncio.Event()
    holder, waiter = (
        await locks_for(redis, redis_prefix, 30),
        await locks_for(redis, redis_prefix, 30, on_wait=lambda tenant: blocked.set()),
    )
    held = await holder.try_acquire(T)
    assert held is not None
    waiting = asyncio.create_task(waiter.acquire(T, wait_s=20))
    await asyncio.wait_for(blocked.wait(), 5)
    loop = asyncio.get_running_loop()
    released_at = loop.time()
    await holder.release(held, quiet=True)
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
    locks = await locks_for(redis, redis_prefix, ttl_s=0.5)
    held = await locks.try_acquire(T)
    assert held is not None and held.usable()
    first_lease = held.valid_until
    assert await locks.renew(held)
    assert held.valid_until > first_lease

    async def ran_out() -> bool:
        return not held.usable()

    await until(ran_out, 5, "the lease to run out without renewal")
    assert not held.lost  # nobody told us: the clock did


async def test_a_lock_taken_over_while_a_call_may_run_comes_occupied(
    redis, redis_prefix: str
) -> None:
    """A holder marks the tenant before calling; if its lock expires before the call's outcome
    is settled (it died, stalled), the next holder is told the Connector may still be busy."""
    locks = await locks_for(redis, redis_prefix, ttl_s=0.3)
    first = await locks.try_acquire(T)
    assert first is not None and not first.occupied
    await redis.set(locks.keys(T).calling, first.fence)  # what a begin does before a call
    taken_over = await locks.acquire(T, wait_s=5)  # the first holder vanished mid-call
    assert taken_over is not None and taken_over.occupied
    assert await locks.release(taken_over, quiet=True)  # waited out the settle period
    again = await locks.try_acquire(T)
    assert again is not None and not again.occupied
    await redis.set(locks.keys(T).calling, again.fence)  # a call, then an unknown outcome:
    assert await locks.release(again, quiet=False)  # released before the settle period
    last = await locks.try_acquire(T)
    assert last is not None and last.occupied


async def test_a_redis_that_lost_its_data_grants_no_lock_until_the_quarantine_ends(
    redis, redis_prefix: str
) -> None:
    """The epoch key vanishing means Redis came back empty: a call made under the lost lock
    may still be running at the Connector, so no lock is granted for lease + settle."""
    holder = await locks_for(redis, redis_prefix, ttl_s=5, quarantine_s=1.0)
    waiter = await locks_for(redis, redis_prefix, ttl_s=5, quarantine_s=1.0)
    lease = await holder.try_acquire(T)
    assert lease is not None
    assert await waiter.try_acquire(T) is None  # and so the waiter knows the epoch now
    for name in (holder.keys(T).lock, holder.epoch.epoch_key):  # what a restart leaves: nothing
        await redis.delete(name)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await waiter.try_acquire(T) is None, "a lock was granted on the emptied Redis"
    assert await holder.renew(lease) is False and lease.lost
    assert waiter.epoch.known == holder.epoch.known != ""
    taken = await waiter.acquire(T, wait_s=5)
    assert taken is not None
    assert loop.time() - started >= 0.9


async def test_a_fence_that_went_back_means_redis_lost_writes(redis, redis_prefix: str) -> None:
    """A failover to a replica that lagged: the counter is lower than one this process was
    given. That is a loss of data too, with the same quarantine."""
    locks = await locks_for(redis, redis_prefix, quarantine_s=30)
    lease = await locks.try_acquire(T)
    assert lease is not None
    await locks.release(lease, quiet=True)
    await redis.set(f"{redis_prefix}:fence:1001:ACME", lease.fence - 5)
    assert await locks.try_acquire(T) is None
    assert await redis.pttl(locks.epoch.quarantine_key) > 25_000
