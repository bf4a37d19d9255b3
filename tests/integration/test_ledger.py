"""The ledger against real Redis: intents, claims, and a begin whose reply was lost."""

from __future__ import annotations

import os
import signal

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.devstack import start_redis
from service.ledger import Ledger, Settlement, Standing
from tests.support.waiting import until

TENANT = ("1001", "ACME")


@pytest.fixture
async def redis(redis_url: str):
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_an_intent_is_in_doubt_to_everyone_but_its_claimant(
    redis: Redis, redis_prefix: str
) -> None:
    ledger = Ledger(redis, redis_prefix, retention_s=60)
    assert (await ledger.begin(TENANT, "inv-1", "d1", claim="mine")).standing is Standing.NEW
    assert (await ledger.begin(TENANT, "inv-1", "d1", claim="mine")).standing is Standing.NEW
    assert (await ledger.begin(TENANT, "inv-1", "d1", claim="theirs")).standing is (
        Standing.IN_DOUBT
    )
    assert (await ledger.begin(TENANT, "inv-1", "d1")).standing is Standing.IN_DOUBT
    await ledger.delivered(TENANT, "inv-1", "d1", attempts=1)
    delivered = await ledger.begin(TENANT, "inv-1", "d1", claim="mine")
    assert delivered.standing is Standing.DELIVERED  # a claim never reopens a delivered entry


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
        ledger = Ledger(stalled, redis_prefix, retention_s=60)
        await ledger.begin(TENANT, "warm-up", "d0")  # script loaded before the stall
        os.kill(private.popen.pid, signal.SIGSTOP)
        try:
            with pytest.raises(RedisError):
                await ledger.begin(TENANT, "inv-2", "d2", claim="mine")
        finally:
            os.kill(private.popen.pid, signal.SIGCONT)

        async def intent_written() -> bool:
            return bool(await observer.exists(f"{redis_prefix}:ledger:1001:ACME:inv-2"))

        await until(intent_written, 10, "Redis to run the begin it received while stalled")
        other = Ledger(observer, redis_prefix, retention_s=60)
        assert (await other.begin(TENANT, "inv-2", "d2")).standing is Standing.IN_DOUBT
        assert (await ledger.begin(TENANT, "inv-2", "d2", claim="mine")).standing is Standing.NEW
    finally:
        await stalled.aclose()
        await observer.aclose()
        private.stop()


async def test_a_result_written_with_the_next_begin_lands_in_the_same_step(
    redis: Redis, redis_prefix: str
) -> None:
    ledger = Ledger(redis, redis_prefix, retention_s=60)
    await ledger.begin(TENANT, "inv-1", "d1", claim="mine")
    done = Settlement(TENANT, "inv-1", "d1", attempts=2, delivered=True)
    assert (await ledger.begin(TENANT, "inv-2", "d2", claim="mine", after=done)).standing is (
        Standing.NEW
    )
    first = await ledger.begin(TENANT, "inv-1", "d1")
    assert (first.standing, first.attempts) == (Standing.DELIVERED, 2)
    assert (await ledger.begin(TENANT, "inv-2", "d2")).standing is Standing.IN_DOUBT

    refused = Settlement(TENANT, "inv-2", "d2", attempts=1, delivered=False)
    again = await ledger.begin(TENANT, "inv-2", "d2", claim="mine", after=refused)
    assert again.standing is Standing.NEW, "withdrawn first, so the same event may go again"

    repeat = Settlement(TENANT, "inv-2", "d2", attempts=1, delivered=True)
    same = await ledger.begin(TENANT, "inv-2", "d2", claim="mine", after=repeat)
    assert same.standing is Standing.DELIVERED, "a repeated event_id sees its own delivery"


async def test_tenant_parts_and_event_ids_holding_colons_never_share_an_entry(
    redis: Redis, redis_prefix: str
) -> None:
    """Tenant (1, A) with event ``x:e`` and tenant (1, A:x) with event ``e`` once joined to the
    same key: the second was answered from the first's entry and never sent."""
    ledger = Ledger(redis, redis_prefix, retention_s=60)
    assert (await ledger.begin(("1", "A"), "x:e", "d1")).standing is Standing.NEW
    await ledger.delivered(("1", "A"), "x:e", "d1", attempts=1)
    assert (await ledger.begin(("1", "A:x"), "e", "d1")).standing is Standing.NEW
    assert (await ledger.begin(("1", "A"), "x:e", "d1")).standing is Standing.DELIVERED
    plain = f"{redis_prefix}:ledger:1001:ACME:inv-7"  # parts without ':' or '%' keep their key
    await ledger.delivered(TENANT, "inv-7", "d7", attempts=1)
    assert await redis.hget(plain, "state") == b"delivered"
