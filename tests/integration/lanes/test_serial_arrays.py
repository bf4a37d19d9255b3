"""A serial route with ``batch_max``: arrays of transactional records against the sandbox over
HTTP (the real Connector client) and real Redis — what the sandbox stored is the verdict."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from service.answers.outcomes import Outcome, Stage
from service.connector.client import ConnectorClient
from service.connector.results import CallResult
from service.dev.sandbox import SandboxThread
from service.dev.sandbox.client import sandbox_post, stored_records
from service.dev.sandbox.client import stats as sandbox_stats
from service.lanes import Delivery
from service.lanes.breaker import Breakers
from service.lanes.retry import Backoff
from service.lanes.serial import ArrayRule, SerialLane, SerialPolicy
from service.state.epoch import Epoch
from service.state.ledger import Ledger
from service.state.locks import TenantLocks
from service.tenants import Tenant
from tests.conftest import COMPANY, CUSTOMER, TOKEN
from tests.support.lanes import never_doubtful
from tests.support.waiting import until

RECEIVABLE = "/accountsReceivable"
TENANT = Tenant(CUSTOMER, COMPANY, SecretStr(TOKEN))
BAD = "REJECT-ME"


def invoice(n: int, *, bad: bool = False) -> dict[str, Any]:
    return {"InvoiceNo": f"INV{n:04d}", "Memo": BAD if bad else "", "Amount": 100 + n}


@dataclass
class ArrayLane:
    """A serial lane whose receivables go out in arrays, over HTTP to the sandbox."""

    lane: SerialLane[str]
    answered: dict[str, Outcome] = field(default_factory=dict)
    answered_at: dict[str, float] = field(default_factory=dict)

    def submit(self, numbers: range, *, bad: int | None = None) -> None:
        for n in numbers:
            record = invoice(n, bad=n == bad)
            self.lane.submit(Delivery(f"inv-{n}", TENANT, RECEIVABLE, record, event_id=f"inv-{n}"))

    async def run(self, numbers: range, *, bad: int | None = None) -> dict[str, Outcome]:
        """Submit and wait for every answer; the answers of this run."""
        self.answered.clear()
        self.submit(numbers, bad=bad)
        await asyncio.wait_for(self.lane.drain(), 30)
        return dict(self.answered)


@asynccontextmanager
async def array_lane(
    redis: Redis,
    prefix: str,
    sandbox: SandboxThread,
    *,
    atomic: bool,
    batch_max: int = 10,
    timeout_s: float = 5.0,
    settle_s: float = 0.0,
    before_call: Callable[[int], Awaitable[None]] | None = None,
) -> AsyncIterator[ArrayLane]:
    """``before_call(n)`` runs before the lane's n-th call (1-based), to change the sandbox's
    faults for exactly that call."""
    epoch = Epoch(redis, prefix, quarantine_s=30 + settle_s)
    await epoch.establish()
    locks = TenantLocks(redis, prefix, ttl_s=30, epoch=epoch)
    client = ConnectorClient(sandbox.url, timeout_s)
    under_test: ArrayLane | None = None

    def sink(pairs: Sequence[tuple[str, Outcome]]) -> None:
        assert under_test is not None
        under_test.answered.update(pairs)
        now = asyncio.get_running_loop().time()
        under_test.answered_at.update((ticket, now) for ticket, _ in pairs)

    calls = 0

    async def post(
        tenant: Tenant, endpoint: str, payload: bytes, *, fence: int | None = None
    ) -> CallResult:
        nonlocal calls
        calls += 1
        if before_call is not None:
            await before_call(calls)
        return await client.post(tenant, endpoint, payload, fence=fence)

    lane: SerialLane[str] = SerialLane(
        post,
        sink,
        locks,
        Ledger(redis, prefix, retention_s=60, epoch=epoch),
        SerialPolicy(
            lock_wait_s=5,
            max_attempts=2,
            backoff=Backoff(0.01),
            call_timeout_s=timeout_s,
            settle_s=settle_s,
        ),
        Breakers(5, 1.0),
        doubtful=never_doubtful,
        arrays={RECEIVABLE: ArrayRule(batch_max, atomic)},
    )
    under_test = ArrayLane(lane)
    try:
        yield under_test
    finally:
        await lane.close()
        await client.aclose()
        await locks.aclose()


def stages(answers: dict[str, Outcome], numbers: range) -> list[Stage | None]:
    return [answers[f"inv-{n}"].stage for n in numbers]


async def invoice_numbers(sandbox: SandboxThread) -> list[str]:
    return [r["record"]["InvoiceNo"] for r in await stored_records(sandbox, RECEIVABLE)]


async def test_records_go_out_in_arrays_of_batch_max_one_call_at_a_time(
    redis: Redis, redis_prefix: str, sandbox: SandboxThread
) -> None:
    async with array_lane(redis, redis_prefix, sandbox, atomic=False) as under_test:
        answers = await under_test.run(range(25))
    assert all(answers[f"inv-{n}"].ok for n in range(25))
    assert await invoice_numbers(sandbox) == [f"INV{n:04d}" for n in range(25)]
    stats = await sandbox_stats(sandbox)
    assert (stats["calls"], stats["batch_calls"]) == (3, 3)
    assert stats["violations"] == 0 and stats["max_concurrent_transactional"] == 1
    delivered = await redis.hget(f"{redis_prefix}:ledger:{CUSTOMER}:{COMPANY}:inv-24", "state")
    assert delivered == b"delivered"


async def test_an_atomic_refusal_is_split_and_each_part_resent(
    redis: Redis, redis_prefix: str, sandbox: SandboxThread
) -> None:
    """The Connector stored nothing of a refused array: the good records go again in parts,
    and only the bad one is refused."""
    await sandbox_post(sandbox, "/_sandbox/faults", {"reject_marker": BAD})
    async with array_lane(redis, redis_prefix, sandbox, atomic=True) as under_test:
        answers = await under_test.run(range(10), bad=3)
    assert stages(answers, range(10)) == [None] * 3 + [Stage.CONNECTOR] + [None] * 6
    assert "record 0: Memo: rejected by Sage" in (answers["inv-3"].message or "")
    assert await invoice_numbers(sandbox) == [f"INV{n:04d}" for n in range(10) if n != 3]
    assert (await sandbox_stats(sandbox))["calls"] == 4  # the array, then 0-2, 3, 4-9


async def test_a_refused_partial_array_leaves_every_record_in_doubt_and_none_is_resent(
    redis: Redis, redis_prefix: str, sandbox: SandboxThread
) -> None:
    """The Connector stored the records before the bad one and said only ERROR: which landed
    cannot be known, so all are unknown_outcome — and a redelivery sends none of them again."""
    await sandbox_post(sandbox, "/_sandbox/faults", {"reject_marker": BAD, "partial_arrays": True})
    async with array_lane(redis, redis_prefix, sandbox, atomic=False) as under_test:
        answers = await under_test.run(range(10), bad=5)
        assert stages(answers, range(10)) == [Stage.UNKNOWN_OUTCOME] * 10
        assert "may have stored some of them" in (answers["inv-0"].message or "")
        again = await under_test.run(range(10), bad=5)  # the same ten, redelivered
    assert stages(again, range(10)) == [Stage.UNKNOWN_OUTCOME] * 10
    assert await invoice_numbers(sandbox) == [f"INV{n:04d}" for n in range(5)]
    assert (await sandbox_stats(sandbox))["calls"] == 1


async def test_a_timeout_on_an_array_puts_every_record_in_doubt_and_the_tenant_waits(
    redis: Redis, redis_prefix: str, sandbox: SandboxThread
) -> None:
    """The Connector may still be storing the array: every record is unknown_outcome at once,
    the tenant's next call waits the settle period, and a redelivery is not resent."""
    await sandbox_post(sandbox, "/_sandbox/faults", {"hang_rate": 1.0})
    async with array_lane(
        redis, redis_prefix, sandbox, atomic=True, timeout_s=0.5, settle_s=1.0
    ) as under_test:
        under_test.submit(range(10))

        async def all_in_doubt() -> bool:
            return len(under_test.answered) == 10

        await until(all_in_doubt, 10, "the array's ten answers")
        await sandbox_post(sandbox, "/_sandbox/faults", {"hang_rate": 0.0})
        under_test.submit(range(10, 12))
        await asyncio.wait_for(under_test.lane.drain(), 30)
        answers, times = dict(under_test.answered), dict(under_test.answered_at)
        again = await under_test.run(range(10))  # a redelivery
    assert stages(answers, range(10)) == [Stage.UNKNOWN_OUTCOME] * 10
    assert all(answers[f"inv-{n}"].attempts == 1 for n in range(10))
    assert stages(answers, range(10, 12)) == [None, None]
    assert times["inv-10"] - times["inv-0"] >= 1.0, "the next call waited the settle period"
    assert stages(again, range(10)) == [Stage.UNKNOWN_OUTCOME] * 10
    assert await invoice_numbers(sandbox) == ["INV0010", "INV0011"]
    stats = await sandbox_stats(sandbox)
    assert stats["calls"] == 2 and stats["violations"] == 0


async def test_a_part_that_times_out_stops_the_split_and_the_rest_waits_the_settle_period(
    redis: Redis, redis_prefix: str, sandbox: SandboxThread
) -> None:
    """An atomic refusal is being split and one part goes unanswered: that part's records are
    in doubt, the parts not sent yet keep their place and go after the settle period."""

    async def hang_the_second_call(number: int) -> None:
        await sandbox_post(sandbox, "/_sandbox/faults", {"hang_rate": 1.0 if number == 2 else 0.0})
        if number == 3:
            # Changing the faults releases the hung call 2 on the sandbox's loop; the settle
            # period stands for "the abandoned call has ended at the Connector", so call 3
            # goes only once the sandbox says it has (else call 3 meets call 2 there).
            async def call_two_ended() -> bool:
                return (await sandbox_stats(sandbox))["in_progress_transactional"] == 0

            await until(call_two_ended, 10, "the hung call released")

    await sandbox_post(sandbox, "/_sandbox/faults", {"reject_marker": BAD})
    async with array_lane(
        redis,
        redis_prefix,
        sandbox,
        atomic=True,
        timeout_s=0.5,
        settle_s=0.5,
        before_call=hang_the_second_call,
    ) as under_test:
        answers = await under_test.run(range(10), bad=3)
    in_doubt, bad, landed = range(3), range(3, 4), range(4, 10)
    assert stages(answers, in_doubt) == [Stage.UNKNOWN_OUTCOME] * 3
    assert stages(answers, bad) == [Stage.CONNECTOR]
    assert stages(answers, landed) == [None] * 6
    times = under_test.answered_at
    assert times["inv-4"] - times["inv-0"] >= 0.5, "the rest went after the settle period"
    assert await invoice_numbers(sandbox) == [f"INV{n:04d}" for n in landed]
    # the array; 0-2 (hung); after the settle period 3-9 again; 3; 4-9
    assert (await sandbox_stats(sandbox))["calls"] == 5


@pytest.mark.parametrize("atomic", [True, False])
async def test_a_lone_record_goes_as_an_object_and_its_refusal_is_certain(
    redis: Redis, redis_prefix: str, sandbox: SandboxThread, atomic: bool
) -> None:
    await sandbox_post(sandbox, "/_sandbox/faults", {"reject_marker": BAD})
    async with array_lane(redis, redis_prefix, sandbox, atomic=atomic) as under_test:
        answers = await under_test.run(range(1), bad=0)
    assert answers["inv-0"].stage is Stage.CONNECTOR
    stats = await sandbox_stats(sandbox)
    assert (stats["calls"], stats["batch_calls"]) == (1, 0)
    assert await redis.exists(f"{redis_prefix}:ledger:{CUSTOMER}:{COMPANY}:inv-0") == 0
