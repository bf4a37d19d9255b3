"""The serial lane's state contracts, run against the Redis-backed locks and ledger and against
the in-memory stand-ins the turn's unit tests use (``tests/support/memory_state.py``): if the
two ever disagree, a unit test of the turn would prove something the service does not do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis

from service.errors import LeaseLost
from service.lanes.serial.ports import SerialLedger
from service.state.epoch import Epoch
from service.state.ledger import EntryState, Ledger, ResultToWrite
from service.state.locks import Lease, LeaseOwner, TenantLocks
from tests.support.memory_state import MemoryLedger, MemoryLocks, MemoryRedis

TENANT = ("1001", "ACME")


@dataclass
class State:
    """Locks and a ledger sharing one store, and a way for "another replica" to take the lock."""

    locks: Any
    ledger: SerialLedger
    take_over: Any

    @property
    def owner(self) -> LeaseOwner:
        owner: LeaseOwner = self.locks
        return owner

    async def lease(self) -> Lease:
        lease = await self.locks.try_acquire(TENANT)
        assert lease is not None
        return lease

    async def begin(self, lease: Lease, event_id: str, digest: str, claim: str, **kw: Any) -> Any:
        guard = self.owner.guard(lease, quiet=kw.pop("quiet", True))
        return await self.ledger.begin_guarded(guard, TENANT, event_id, digest, claim=claim, **kw)


@pytest.fixture(params=["redis", "memory"])
async def state(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> AsyncIterator[State]:
    if request.param == "memory":
        store = MemoryRedis()
        locks = MemoryLocks(store)
        yield State(locks, MemoryLedger(store), locks.take_over)
        return
    redis = Redis.from_url(redis_url)
    epoch = Epoch(redis, redis_prefix, quarantine_s=5)
    await epoch.establish()
    real = TenantLocks(redis, redis_prefix, ttl_s=5, epoch=epoch)

    async def take_over(tenant: tuple[str, str]) -> None:
        await redis.set(real.keys(tenant).lock, "another-replica")

    try:
        yield State(real, Ledger(redis, redis_prefix, retention_s=60, epoch=epoch), take_over)
    finally:
        await real.aclose()
        await redis.aclose()


async def _take_over(state: State) -> None:
    done = state.take_over(TENANT)
    if done is not None:
        await done


async def test_a_new_record_is_begun_once_and_in_doubt_to_anyone_without_its_claim(
    state: State,
) -> None:
    lease = await state.lease()
    first = await state.begin(lease, "inv-1", "d1", "mine")
    assert first.entry.state is EntryState.NEW
    again = await state.begin(lease, "inv-1", "d1", "mine")
    assert again.entry.state is EntryState.NEW, "its own claim: a lost reply, retried"
    other = await state.begin(lease, "inv-1", "d1", "theirs")
    assert other.entry.state is EntryState.IN_DOUBT
    late = ResultToWrite(TENANT, "inv-1", "d1", 1, delivered=True, claim="mine")
    assert await state.ledger.write_results([late], state.owner.guard(lease, quiet=True)) == [False]


async def test_other_data_under_a_used_event_id_is_a_conflict(state: State) -> None:
    lease = await state.lease()
    await state.begin(lease, "inv-1", "d1", "mine")
    assert (await state.begin(lease, "inv-1", "d2", "theirs")).entry.state is EntryState.CONFLICT


async def test_a_delivered_result_rides_on_the_next_begin_and_a_withdrawal_frees_the_event_id(
    state: State,
) -> None:
    lease = await state.lease()
    await state.begin(lease, "inv-1", "d1", "c1")
    done = ResultToWrite(TENANT, "inv-1", "d1", 2, delivered=True, claim="c1")
    second = await state.begin(lease, "inv-2", "d2", "c2", after=done)
    assert second.previous_written and second.entry.state is EntryState.NEW
    found = await state.begin(lease, "inv-1", "d1", "c3")
    assert (found.entry.state, found.entry.attempts) == (EntryState.DELIVERED, 2)
    refused = ResultToWrite(TENANT, "inv-2", "d2", 1, delivered=False, claim="c2")
    assert await state.ledger.write_results([refused], state.owner.guard(lease, quiet=True)) == [
        True
    ]
    assert (await state.begin(lease, "inv-2", "d2", "c4")).entry.state is EntryState.NEW


async def test_an_array_is_begun_in_one_step(state: State) -> None:
    lease = await state.lease()
    await state.begin(lease, "inv-1", "d1", "c1")
    await state.ledger.write_results(
        [ResultToWrite(TENANT, "inv-1", "d1", 1, delivered=True, claim="c1")],
        state.owner.guard(lease, quiet=True),
    )
    guard = state.owner.guard(lease, quiet=True)
    rows = [("inv-1", "d1", "a1"), ("inv-2", "d2", "a2")]
    found = await state.ledger.begin_guarded_many(guard, TENANT, rows)
    assert [e.state for e in found] == [EntryState.DELIVERED, EntryState.NEW]


async def test_a_step_under_a_lease_taken_over_writes_nothing_and_loses_the_lease(
    state: State,
) -> None:
    lease = await state.lease()
    await _take_over(state)

    async def step(guard: Any) -> Any:
        return await state.ledger.begin_guarded(guard, TENANT, "inv-1", "d1", claim="c1")

    with pytest.raises(LeaseLost):
        await state.owner.under_lease(lease, step, quiet=True)
    assert lease.lost and not lease.usable()
    assert await state.locks.release(lease, quiet=True) is False


async def test_a_lock_released_while_a_call_may_run_comes_back_occupied(state: State) -> None:
    lease = await state.lease()
    assert await state.locks.try_acquire(TENANT) is None, "one holder at a time"
    await state.begin(lease, "inv-1", "d1", "c1", quiet=False)  # a call is about to be made
    assert await state.locks.release(lease, quiet=False)
    loud = await state.lease()
    assert loud.occupied
    await state.begin(loud, "inv-2", "d2", "c2", quiet=True)
    guard = state.owner.guard(loud, quiet=True)
    await state.ledger.write_results([ResultToWrite(TENANT, "inv-2", "d2", 0, False, "c2")], guard)
    assert await state.locks.release(loud, quiet=True)
    assert not (await state.lease()).occupied


async def test_a_waiter_marks_the_lock_wanted_for_the_holders_begin_until_a_release(
    state: State,
) -> None:
    lease = await state.lease()
    assert not (await state.begin(lease, "inv-1", "d1", "c1")).wanted, "nobody waits"
    assert await state.locks.try_acquire(TENANT) is None
    assert not (await state.begin(lease, "inv-2", "d2", "c2")).wanted, "a try is no wait"
    assert await state.locks.acquire(TENANT, 0.05) is None, "another replica waits in vain"
    assert (await state.begin(lease, "inv-3", "d3", "c3")).wanted
    assert await state.locks.release(lease, quiet=True)
    again = await state.lease()
    assert not (await state.begin(again, "inv-4", "d4", "c4")).wanted, "the release cleared it"
