"""In doubt, then looked up: a serial route with a ``lookup`` asks Sage about each record in doubt
once no call of its company can still be running. The sandbox over HTTP (the real Connector
client, its list GET) and real Redis; what the sandbox stored and was called with is the verdict.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from service.answers.outcomes import Outcome, Stage, Subject, reply_body
from service.connector.client import ConnectorClient
from service.connector.lookup import sighting
from service.connector.results import CallResult
from service.dev.sandbox import SandboxThread
from service.dev.sandbox.client import sandbox_get, sandbox_post, stored_records
from service.dev.sandbox.client import stats as sandbox_stats
from service.lanes import Delivery
from service.lanes.breaker import Breakers
from service.lanes.retry import Backoff
from service.lanes.serial import SerialLane, SerialPolicy
from service.lanes.serial.lookups import LookupRule, Lookups
from service.state.carried import CarriedCalls
from service.state.epoch import Epoch
from service.state.ledger import Ledger, fingerprint
from service.state.locks import TenantLocks
from service.tenants import Tenant
from tests.conftest import COMPANY, CUSTOMER, TOKEN

RECEIVABLE = "/accountsReceivable"
TENANT = Tenant(CUSTOMER, COMPANY, SecretStr(TOKEN))
BY_NUMBER = {"InvoiceNo": "invoiceNo"}


def invoice(n: int) -> dict[str, Any]:
    return {"InvoiceNo": f"INV{n:04d}", "Amount": 100 + n}


@dataclass
class LookupLane:
    lane: SerialLane[str]
    answered: dict[str, Outcome] = field(default_factory=dict)

    async def run(self, numbers: range) -> dict[str, Outcome]:
        for n in numbers:
            delivery = Delivery(f"inv-{n}", TENANT, RECEIVABLE, invoice(n), event_id=f"inv-{n}")
            self.lane.submit(delivery)
        await asyncio.wait_for(self.lane.drain(), 60)
        return dict(self.answered)


@asynccontextmanager
async def lookup_lane(
    redis: Redis,
    prefix: str,
    sandbox: SandboxThread,
    *,
    resend_if_absent: bool = False,
    settle_s: float = 0.2,
    lock_ttl_s: float = 30,
    doubtful: bool = False,
    faults_after_first_call: dict[str, Any] | None = None,
) -> AsyncIterator[LookupLane]:
    """A serial lane whose receivables route looks records up by ``InvoiceNo``;
    ``faults_after_first_call`` are set at the sandbox once the lane's first call returned."""
    epoch = Epoch(redis, prefix, quarantine_s=30 + settle_s)
    await epoch.establish()
    locks = TenantLocks(redis, prefix, ttl_s=lock_ttl_s, epoch=epoch)
    client = ConnectorClient(sandbox.url, 2.0)
    answered: dict[str, Outcome] = {}

    def sink(pairs: Sequence[tuple[str, Outcome]]) -> None:
        answered.update(pairs)

    async def is_doubtful(ticket: str) -> bool:
        return doubtful

    calls = 0

    async def post(
        tenant: Tenant, endpoint: str, payload: bytes, *, fence: int | None = None
    ) -> CallResult:
        nonlocal calls
        result = await client.post(tenant, endpoint, payload, fence=fence)
        calls += 1
        if calls == 1 and faults_after_first_call is not None:
            await sandbox_post(sandbox, "/_sandbox/faults", faults_after_first_call)
        return result

    lane: SerialLane[str] = SerialLane(
        post,
        sink,
        locks,
        Ledger(redis, prefix, retention_s=600, epoch=epoch),
        SerialPolicy(
            lock_wait_s=60,
            max_attempts=3,
            backoff=Backoff(0.01),
            call_timeout_s=2.0,
            settle_s=settle_s,
        ),
        Breakers(5, 1.0),
        doubtful=is_doubtful,
        lookups=Lookups(
            {RECEIVABLE: LookupRule(BY_NUMBER, resend_if_absent)},
            functools.partial(sighting, client.get),
            CarriedCalls(redis, prefix),
        ),
    )
    under_test = LookupLane(lane, answered)
    try:
        yield under_test
    finally:
        await lane.close()
        await client.aclose()
        await locks.aclose()


async def invoice_numbers(sandbox: SandboxThread) -> list[str]:
    return [r["record"]["InvoiceNo"] for r in await stored_records(sandbox, RECEIVABLE)]


def reply_of(outcome: Outcome) -> dict[str, Any]:
    subject = Subject("inv-0", "inv-0", "ar_invoice.create", (CUSTOMER, COMPANY), RECEIVABLE)
    return dict(orjson.loads(reply_body(subject, outcome)))


async def test_an_invoice_stored_then_answered_502_is_found_in_sage_and_not_sent_again(
    redis: Redis, redis_prefix: str, sandbox: SandboxThread
) -> None:
    """The Connector stored the invoice and a proxy answered 502: after the settle period the
    look-up finds it, so it is answered SUCCESS ("found in Sage") and the ledger says
    delivered; a redelivery is answered from the ledger. One call in all."""
    faults = {"store_then_fail_rate": 1.0, "store_then_fail_status": 502}
    await sandbox_post(sandbox, "/_sandbox/faults", faults)
    async with lookup_lane(redis, redis_prefix, sandbox) as under_test:
        answers = await under_test.run(range(1))
        await sandbox_post(sandbox, "/_sandbox/faults", {"store_then_fail_rate": 0.0})
        again = await under_test.run(range(1))
    assert answers["inv-0"].ok, answers["inv-0"]
    assert reply_of(answers["inv-0"])["message"] == "found in Sage"
    assert again["inv-0"].ok
    assert await invoice_numbers(sandbox) == ["INV0000"]
    stats = await sandbox_stats(sandbox)
    assert stats["calls"] == 1 and stats["lookups"] >= 1, stats
    entry = f"{redis_prefix}:ledger:{CUSTOMER}:{COMPANY}:inv-0"
    assert await redis.hget(entry, "state") == b"delivered"


@pytest.mark.parametrize("resend_if_absent", [False, True])
async def test_an_invoice_in_doubt_that_sage_does_not_have(
    redis: Redis, redis_prefix: str, sandbox: SandboxThread, resend_if_absent: bool
) -> None:
    """A 500 left the invoice in doubt and Sage does not have it. Without ``resend_if_absent``
    it stays unknown_outcome for a person, the answer saying when Sage was checked; with it,
    the invoice is sent once more and lands once."""
    await sandbox_post(sandbox, "/_sandbox/faults", {"fail_rate": 1.0})
    checked_after = time.time()
    healed = {"fail_rate": 0.0}
    async with lookup_lane(
        redis,
        redis_prefix,
        sandbox,
        resend_if_absent=resend_if_absent,
        faults_after_first_call=healed,
    ) as under_test:
        answers = await under_test.run(range(1))
    calls = (await sandbox_get(sandbox, "/_sandbox/calls"))["calls"]
    if resend_if_absent:
        assert answers["inv-0"].ok, answers["inv-0"]
        assert [c["status"] for c in calls] == [500, 200]
        assert await invoice_numbers(sandbox) == ["INV0000"]
        return
    outcome = answers["inv-0"]
    assert outcome.stage is Stage.UNKNOWN_OUTCOME
    message = outcome.message or ""
    assert "not found in Sage when checked at " in message, message
    stamp = message.rsplit("checked at ", 1)[1]
    checked = time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert checked >= int(checked_after)
    assert [c["status"] for c in calls] == [500]
    assert await invoice_numbers(sandbox) == []


@pytest.mark.parametrize("how", ["redelivered in doubt", "new after Redis lost the ledger"])
async def test_a_record_found_in_doubt_by_its_begin_is_looked_up_under_a_quiet_hold(
    redis: Redis, redis_prefix: str, sandbox: SandboxThread, how: str
) -> None:
    """Every record in doubt is looked up, not only those of this process's calls: an intent
    left by a crashed attempt, and a record new to a ledger that lost its data. Sage has the
    invoice, so each is answered SUCCESS with no call; one Sage does not have stays
    unknown_outcome."""
    seeding = ConnectorClient(sandbox.url, 2.0)
    try:  # the earlier attempt's call, which Sage stored
        await seeding.post(TENANT, RECEIVABLE, orjson.dumps(invoice(0)))
    finally:
        await seeding.aclose()
    if how == "redelivered in doubt":
        epoch = Epoch(redis, redis_prefix, quarantine_s=30)
        await epoch.establish()
        ledger = Ledger(redis, redis_prefix, retention_s=600, epoch=epoch)
        keys = [((CUSTOMER, COMPANY), f"inv-{n}", fingerprint(invoice(n))) for n in range(2)]
        await ledger.begin_many(keys)  # a crashed attempt's intents
    async with lookup_lane(
        redis, redis_prefix, sandbox, doubtful=how != "redelivered in doubt"
    ) as under_test:
        answers = await under_test.run(range(2))
    assert answers["inv-0"].ok and answers["inv-0"].message == "found in Sage", answers
    assert answers["inv-1"].stage is Stage.UNKNOWN_OUTCOME
    assert "not found in Sage when checked at" in (answers["inv-1"].message or "")
    assert await invoice_numbers(sandbox) == ["INV0000"]
    assert (await sandbox_stats(sandbox))["calls"] == 1, "only the earlier attempt's call"


async def test_after_a_crash_the_next_holder_finds_the_earlier_call_in_sage_and_does_not_wait(
    redis: Redis, redis_prefix: str, sandbox: SandboxThread
) -> None:
    """An earlier holder began inv-0, noted what its call carried, called (Sage stored it) and
    died holding the lock. The next holder is granted the lock ``occupied``; the look-up finds
    inv-0, so that call has ended at the Connector and the settle period (60 s here) is
    skipped: the next call reaches the sandbox long before it would have ended."""
    settle_s = 60.0
    epoch = Epoch(redis, redis_prefix, quarantine_s=30)
    await epoch.establish()
    dead = TenantLocks(redis, redis_prefix, ttl_s=0.5, epoch=epoch)
    lease = await dead.acquire(TENANT.key, 5)
    assert lease is not None
    ledger = Ledger(redis, redis_prefix, retention_s=600, epoch=epoch)
    digest = fingerprint(invoice(0))
    await ledger.begin_guarded(
        dead.guard(lease, quiet=True), TENANT.key, "inv-0", digest, claim="dead:0"
    )
    await CarriedCalls(redis, redis_prefix).note(
        TENANT.key, lease.fence, RECEIVABLE, [orjson.dumps(invoice(0))]
    )
    client = ConnectorClient(sandbox.url, 2.0)
    try:
        await client.post(TENANT, RECEIVABLE, orjson.dumps(invoice(0)), fence=lease.fence)
    finally:
        await client.aclose()
        await dead.aclose()  # dies holding the lock: no release, the calling marker stays
    async with lookup_lane(
        redis, redis_prefix, sandbox, settle_s=settle_s, lock_ttl_s=30
    ) as under_test:
        answers = await under_test.run(range(2))
    assert answers["inv-0"].ok and answers["inv-0"].message == "found in Sage", answers
    assert answers["inv-1"].ok and answers["inv-1"].message is None
    calls = (await sandbox_get(sandbox, "/_sandbox/calls"))["calls"]
    assert len(calls) == 2 and calls[1]["received_s"] - calls[0]["received_s"] < settle_s
    assert await invoice_numbers(sandbox) == ["INV0000", "INV0001"]
    assert (await sandbox_stats(sandbox))["violations"] == 0
