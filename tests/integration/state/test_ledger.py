"""The ledger against real Redis: intents, claims, and a begin whose reply was lost."""

from __future__ import annotations

import os
import signal

import pytest
from redis.asyncio import Redis

from service.dev.devstack import start_redis
from service.errors import EpochMovedError, LeaseLost, StateUnavailable
from service.state.epoch import Epoch
from service.state.ledger import EntryState, Ledger, ResultToWrite
from service.state.locks import Guard, Lease, TenantLocks
from tests.support.ledger import begin_one, delivered_one, write_one
from tests.support.waiting import until

TENANT = ("1001", "ACME")


def ledger_for(redis: Redis, prefix: str) -> Ledger:
    """For begin/settle without a lease (the master-data path): no epoch check involved."""
    return Ledger(redis, prefix, retention_s=60, epoch=Epoch(redis, prefix, quarantine_s=5))


async def leased(redis: Redis, prefix: str) -> tuple[Ledger, TenantLocks, Lease]:
    """A ledger and a held tenant lock, sharing one epoch (as in the service)."""
    epoch = Epoch(redis, prefix, quarantine_s=5)
    await epoch.establish()
    locks = TenantLocks(redis, prefix, ttl_s=5, epoch=epoch)
    lease = await locks.try_acquire(TENANT)
    assert lease is not None
    return Ledger(redis, prefix, retention_s=60, epoch=epoch), locks, lease


def guard(locks: TenantLocks, lease: Lease, quiet: bool = True) -> Guard:
    return locks.guard(lease, quiet=quiet)


@pytest.fixture
async def redis(redis_url: str):
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_an_intent_is_in_doubt_to_everyone_but_its_claimant(
    redis: Redis, redis_prefix: str
) -> None:
    ledger = ledger_for(redis, redis_prefix)
    assert (await begin_one(ledger, TENANT, "inv-1", "d1", claim="mine")).state is EntryState.NEW
    assert (await begin_one(ledger, TENANT, "inv-1", "d1", claim="mine")).state is EntryState.NEW
    assert (await begin_one(ledger, TENANT, "inv-1", "d1", claim="theirs")).state is (
        EntryState.IN_DOUBT
    )
    assert (await begin_one(ledger, TENANT, "inv-1", "d1")).state is EntryState.IN_DOUBT
    await delivered_one(ledger, TENANT, "inv-1", "d1", 1)
    delivered = await begin_one(ledger, TENANT, "inv-1", "d1", claim="mine")
    assert delivered.state is EntryState.DELIVERED  # a claim never reopens a delivered entry


async def test_a_begin_whose_reply_was_lost_is_retried_as_new_by_its_claimant(
    redis_prefix: str,
) -> None:
    """Redis stalls past the client's timeout and then runs the script anyway: the intent
    exists, but only the process that still holds the record (and its claim) may go ahead."""
    private = start_redis()
    url = f"redis://127.0.0.1:{private.port}/0"
    stalled = Redis.from_url(url, socket_timeout=0.3)
    observer = Redis.from_url(url)
    try:
        ledger = ledger_for(stalled, redis_prefix)
        await begin_one(ledger, TENANT, "warm-up", "d0")  # script loaded before the stall
        os.kill(private.popen.pid, signal.SIGSTOP)
        try:
            with pytest.raises(StateUnavailable):
                await begin_one(ledger, TENANT, "inv-2", "d2", claim="mine")
        finally:
            os.kill(private.popen.pid, signal.SIGCONT)

        async def intent_written() -> bool:
            return bool(await observer.exists(f"{redis_prefix}:ledger:1001:ACME:inv-2"))

        await until(intent_written, 10, "Redis to run the begin it received while stalled")
        assert (
            await begin_one(ledger, TENANT, "inv-2", "d2", claim="mine")
        ).state is EntryState.NEW
        other = ledger_for(observer, redis_prefix)
        assert (await begin_one(other, TENANT, "inv-2", "d2")).state is EntryState.IN_DOUBT
        # Once another process has reported it in doubt, its claimant may not go ahead either.
        assert (await begin_one(ledger, TENANT, "inv-2", "d2", claim="mine")).state is (
            EntryState.IN_DOUBT
        )
    finally:
        await stalled.aclose()
        await observer.aclose()
        private.stop()


async def test_a_result_written_with_the_next_begin_lands_in_the_same_step(
    redis: Redis, redis_prefix: str
) -> None:
    ledger, locks, lease = await leased(redis, redis_prefix)
    held = guard(locks, lease)
    first = await ledger.begin_guarded(held, TENANT, "inv-1", "d1", claim="mine")
    assert first.entry.state is EntryState.NEW
    assert await redis.get(locks.keys(TENANT).calling) == str(lease.fence).encode()
    done = ResultToWrite(TENANT, "inv-1", "d1", attempts=2, delivered=True, claim="mine")
    second = await ledger.begin_guarded(held, TENANT, "inv-2", "d2", claim="mine", after=done)
    assert second.entry.state is EntryState.NEW and second.previous_written
    delivered = await begin_one(ledger, TENANT, "inv-1", "d1")
    assert (delivered.state, delivered.attempts) == (EntryState.DELIVERED, 2)

    refused = ResultToWrite(TENANT, "inv-3", "d3", attempts=1, delivered=False, claim="mine")
    await ledger.begin_guarded(held, TENANT, "inv-3", "d3", claim="mine")
    again = await ledger.begin_guarded(held, TENANT, "inv-3", "d3", claim="mine", after=refused)
    assert again.entry.state is EntryState.NEW, "withdrawn first, so the same event may go again"


async def test_a_guarded_begin_under_a_lost_lease_or_epoch_writes_nothing(
    redis: Redis, redis_prefix: str
) -> None:
    ledger, locks, lease = await leased(redis, redis_prefix)
    await redis.delete(locks.keys(TENANT).lock)  # expired, or taken by another replica
    with pytest.raises(LeaseLost):
        await ledger.begin_guarded(guard(locks, lease), TENANT, "inv-1", "d1", claim="mine")
    ledger, locks, lease = await leased(redis, redis_prefix)
    await redis.delete(locks.epoch.epoch_key)  # Redis came back empty
    with pytest.raises(EpochMovedError):
        await ledger.begin_guarded(guard(locks, lease), TENANT, "inv-1", "d1", claim="mine")
    assert await redis.exists(f"{redis_prefix}:ledger:1001:ACME:inv-1") == 0
    assert await redis.pttl(locks.epoch.quarantine_key) > 0


async def test_a_record_reported_in_doubt_by_another_replica_keeps_that_verdict(
    redis: Redis, redis_prefix: str
) -> None:
    """A stopped holder wakes up with its call's answer after its partition moved: the new
    owner already reported the record in doubt, so the late result must not be written (nor
    answered): one verdict per event."""
    ledger, locks, lease = await leased(redis, redis_prefix)
    await ledger.begin_guarded(guard(locks, lease), TENANT, "inv-1", "d1", claim="stopped")
    successor = ledger_for(redis, redis_prefix)
    assert (await begin_one(successor, TENANT, "inv-1", "d1", claim="new")).state is (
        EntryState.IN_DOUBT
    )
    late = ResultToWrite(TENANT, "inv-1", "d1", attempts=1, delivered=True, claim="stopped")
    assert await write_one(ledger, late, guard(locks, lease)) is False
    assert (await begin_one(successor, TENANT, "inv-1", "d1")).state is EntryState.IN_DOUBT
    # Its own result is written while nobody else has looked — even into an emptied ledger.
    await ledger.begin_guarded(guard(locks, lease), TENANT, "inv-2", "d2", claim="stopped")
    own = ResultToWrite(TENANT, "inv-2", "d2", attempts=1, delivered=True, claim="stopped")
    assert await write_one(ledger, own, guard(locks, lease)) is True
    await redis.delete(f"{redis_prefix}:ledger:1001:ACME:inv-3")
    gone = ResultToWrite(TENANT, "inv-3", "d3", attempts=1, delivered=True, claim="stopped")
    assert await write_one(ledger, gone, guard(locks, lease)) is True


async def test_tenant_parts_and_event_ids_holding_colons_never_share_an_entry(
    redis: Redis, redis_prefix: str
) -> None:
    """Tenant (1, A) with event ``x:e`` and tenant (1, A:x) with event ``e`` once joined to the
    same key: the second was answered from the first's entry and never sent."""
    ledger = ledger_for(redis, redis_prefix)
    assert (await begin_one(ledger, ("1", "A"), "x:e", "d1")).state is EntryState.NEW
    await delivered_one(ledger, ("1", "A"), "x:e", "d1", 1)
    assert (await begin_one(ledger, ("1", "A:x"), "e", "d1")).state is EntryState.NEW
    assert (await begin_one(ledger, ("1", "A"), "x:e", "d1")).state is EntryState.DELIVERED
    plain = f"{redis_prefix}:ledger:1001:ACME:inv-7"  # parts without ':' or '%' keep their key
    await delivered_one(ledger, TENANT, "inv-7", "d7", 1)
    assert await redis.hget(plain, "state") == b"delivered"


async def test_a_result_whose_first_write_landed_unseen_is_still_ours(
    redis: Redis, redis_prefix: str
) -> None:
    """Redis froze while a begin carrying the previous record's result was in flight: the
    client timed out, Redis ran it later. Writing that result again must succeed (and the
    record be answered), not be taken for another replica's verdict."""
    ledger, locks, lease = await leased(redis, redis_prefix)
    held = guard(locks, lease)
    await ledger.begin_guarded(held, TENANT, "inv-1", "d1", claim="c1")
    done = ResultToWrite(TENANT, "inv-1", "d1", attempts=1, delivered=True, claim="c1")
    await ledger.begin_guarded(held, TENANT, "inv-2", "d2", claim="c2", after=done)  # "lost"
    assert await write_one(ledger, done, held) is True
    refused = ResultToWrite(TENANT, "inv-2", "d2", attempts=1, delivered=False, claim="c2")
    assert await write_one(ledger, refused, held) is True
    assert await write_one(ledger, refused, held) is True  # withdrawn already: still ours


async def test_an_array_is_begun_in_one_guarded_step_and_settled_in_another(
    redis: Redis, redis_prefix: str
) -> None:
    """Every record of an array call has its intent before the call, and its result after it,
    each in one script under the lease."""
    ledger, locks, lease = await leased(redis, redis_prefix)
    held = guard(locks, lease)
    await delivered_one(ledger, TENANT, "inv-0", "d0", 1)
    begun = await ledger.begin_guarded_many(
        held, TENANT, [("inv-0", "d0", "c0"), ("inv-1", "d1", "c1"), ("inv-2", "d2", "c2")]
    )
    assert [e.state for e in begun] == [EntryState.DELIVERED, EntryState.NEW, EntryState.NEW]
    assert await redis.get(locks.keys(TENANT).calling) == str(lease.fence).encode()
    again = await ledger.begin_guarded_many(held, TENANT, [("inv-1", "d1", "c1")])
    assert [e.state for e in again] == [EntryState.NEW], "its own claim goes ahead"
    results = [
        ResultToWrite(TENANT, "inv-1", "d1", attempts=1, delivered=True, claim="c1"),
        ResultToWrite(TENANT, "inv-2", "d2", attempts=1, delivered=False, claim="c2"),
    ]
    assert await ledger.write_results(results, held) == [True, True]
    assert await redis.exists(locks.keys(TENANT).calling) == 0
    assert (await begin_one(ledger, TENANT, "inv-1", "d1")).state is EntryState.DELIVERED
    assert (await begin_one(ledger, TENANT, "inv-2", "d2")).state is EntryState.NEW

    await redis.delete(locks.keys(TENANT).lock)  # expired, or taken by another replica
    with pytest.raises(LeaseLost):
        await ledger.begin_guarded_many(held, TENANT, [("inv-9", "d9", "c9")])
    assert await redis.exists(f"{redis_prefix}:ledger:1001:ACME:inv-9") == 0


@pytest.mark.parametrize("attempts", [(1, 1, 1), (1, 3, 2)], ids=["shared", "each-its-own"])
async def test_delivered_many_keeps_each_records_data_and_attempts(
    redis: Redis, redis_prefix: str, attempts: tuple[int, int, int]
) -> None:
    """The records of one call share their attempts and are sent in the short form; records of
    calls that took different attempts each carry their own."""
    ledger = ledger_for(redis, redis_prefix)
    records = [(TENANT, f"c-{i}", f"d{i}") for i in range(3)]
    await ledger.begin_many(records)
    await ledger.delivered_many(
        [(t, e, d, made) for (t, e, d), made in zip(records, attempts, strict=True)]
    )
    found = await ledger.begin_many(records)
    assert [(f.state, f.attempts) for f in found] == [
        (EntryState.DELIVERED, made) for made in attempts
    ]
    other_data = await ledger.begin_many([(TENANT, "c-1", "changed")])
    assert [f.state for f in other_data] == [EntryState.CONFLICT]
