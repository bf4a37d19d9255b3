"""Transactional records in-process: one at a time per tenant, ledger, unknown outcomes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from service.answers.outcomes import Outcome, Stage
from service.connector.results import Delivered, Unknown
from service.dev.events import event, produce
from service.dev.sandbox.client import sandbox_post, stored_records
from service.dev.sandbox.client import stats as sandbox_stats
from service.dev.topics import Topics
from service.lanes import Delivery
from service.lanes.breaker import Breakers
from service.lanes.retry import Backoff
from service.lanes.serial import SerialLane, SerialPolicy
from service.state.epoch import Epoch
from service.state.ledger import Ledger
from service.state.locks import TenantLocks
from service.tenants import Tenant
from tests.support.kafka import Collector
from tests.support.lanes import never_doubtful


def invoice(n: int) -> dict[str, object]:
    return {"InvoiceNo": f"INV{n:06d}", "CustomerNo": "ABC", "Amount": 100 + n}


async def test_invoices_are_sent_one_at_a_time_in_order(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    await sandbox_post(sandbox, "/_sandbox/faults", {"latency_ms": 5})
    events = [
        (b"same-key", event(f"inv-{n}", invoice(n), type="ar_invoice.create")) for n in range(40)
    ]
    async with running_service():
        await produce(kafka_bootstrap, topics.events, events)
        replies = await collector.wait_for(topics.replies, 40)
    assert all(r.json()["response"] == "SUCCESS" for r in replies), replies[0].json()
    assert all(r.json()["endpoint"] == "/accountsReceivable" for r in replies)
    stats = await sandbox_stats(sandbox)
    assert stats["violations"] == 0 and stats["max_concurrent_transactional"] == 1
    stored = await stored_records(sandbox, "/accountsReceivable")
    assert [r["record"]["InvoiceNo"] for r in stored] == [f"INV{n:06d}" for n in range(40)]


async def test_redelivered_invoice_is_answered_from_the_ledger(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    same = event("inv-dup", invoice(1), type="ar_invoice.create")
    async with running_service():
        await produce(kafka_bootstrap, topics.events, [(b"k", same), (b"k", same)])
        replies = await collector.wait_for(topics.replies, 2)
    assert [r.json()["response"] for r in replies] == ["SUCCESS", "SUCCESS"]
    assert len(await stored_records(sandbox, "/accountsReceivable")) == 1


async def test_same_event_id_with_other_data_is_refused(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    async with running_service():
        await produce(
            kafka_bootstrap,
            topics.events,
            [
                (b"k", event("inv-x", invoice(1), type="ar_invoice.create")),
                (b"k", event("inv-x", invoice(2), type="ar_invoice.create")),
            ],
        )
        replies = await collector.wait_for(topics.replies, 2)
        await collector.wait_for(topics.dlt, 1)
    assert replies[0].json()["response"] == "SUCCESS"
    assert replies[1].json()["response"] == "ERROR"
    assert "different data" in replies[1].json()["message"]


async def test_timed_out_call_is_unknown_outcome_and_not_resent(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    await sandbox_post(sandbox, "/_sandbox/faults", {"hang_rate": 1.0})
    async with running_service(http_timeout_s=0.5, max_attempts=5):
        await produce(
            kafka_bootstrap,
            topics.events,
            [(b"k", event("inv-hang", invoice(1), type="ar_invoice.create"))],
        )
        [reply] = await collector.wait_for(topics.replies, 1)
        [dead] = await collector.wait_for(topics.dlt, 1)
        await sandbox_post(sandbox, "/_sandbox/faults", {"hang_rate": 0.0})
        # The same event again (a redelivery): the intent is there without a result.
        await produce(
            kafka_bootstrap,
            topics.events,
            [(b"k", event("inv-hang", invoice(1), type="ar_invoice.create"))],
        )
        replies = await collector.wait_for(topics.replies, 2)
    assert reply.json()["stage"] == "unknown_outcome" and reply.json()["attempts"] == 1
    assert dead.headers["x-error-stage"] == b"unknown_outcome"
    assert replies[1].json()["stage"] == "unknown_outcome"
    stats = await sandbox_stats(sandbox)
    assert stats["calls"] == 1  # never resent


TENANT = Tenant("1001", "ACME", SecretStr("t"))


@dataclass
class LaneUnderTest:
    """A serial lane on real Redis with a stand-in Connector (``post``), collecting what it
    answers and what it gives up."""

    lane: SerialLane[str]
    locks: TenantLocks
    answered: list[tuple[str, Outcome]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def submit(self, n: int, record: dict[str, Any] | None = None) -> None:
        body = record if record is not None else {"n": n}
        self.lane.submit(
            Delivery(f"inv-{n}", TENANT, "/accountsReceivable", body, event_id=f"inv-{n}")
        )


@asynccontextmanager
async def lane_under_test(
    redis: Redis, prefix: str, post: Any, *, settle_s: float = 0.0, ttl_s: float = 30
) -> AsyncIterator[LaneUnderTest]:
    epoch = Epoch(redis, prefix, quarantine_s=ttl_s + settle_s)
    await epoch.establish()
    locks = TenantLocks(redis, prefix, ttl_s=ttl_s, epoch=epoch)
    answered: list[tuple[str, Outcome]] = []
    dropped: list[str] = []
    lane: SerialLane[str] = SerialLane(
        post,
        answered.extend,
        locks,
        Ledger(redis, prefix, retention_s=60, epoch=epoch),
        SerialPolicy(
            lock_wait_s=5,
            max_attempts=1,
            backoff=Backoff(0.01),
            call_timeout_s=1.0,
            settle_s=settle_s,
        ),
        Breakers(5, 1.0),
        doubtful=never_doubtful,
        on_dropped=dropped.extend,
    )
    try:
        yield LaneUnderTest(lane, locks, answered, dropped)
    finally:
        await locks.aclose()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_each_call_starts_only_once_the_previous_result_is_in_the_ledger(
    redis: Redis, redis_prefix: str
) -> None:
    """A crash must leave at most the record in flight in doubt: when call k reaches the
    Connector, the ledger already holds call k-1's result (real Redis, stand-in Connector)."""
    seen_before_call: list[bytes | None] = []

    async def post(_: Tenant, endpoint: str, payload: bytes, *, fence: int | None = None):
        number = orjson.loads(payload)["n"]
        if number:
            key = f"{redis_prefix}:ledger:1001:ACME:inv-{number - 1}"
            seen_before_call.append(await redis.hget(key, "state"))
        return Delivered({"response": "SUCCESS"})

    async with lane_under_test(redis, redis_prefix, post) as under_test:
        for n in range(20):
            under_test.submit(n)
        await asyncio.wait_for(under_test.lane.drain(), 30)
    assert [ticket for ticket, _ in under_test.answered] == [f"inv-{n}" for n in range(20)]
    assert seen_before_call == [b"delivered"] * 19


async def test_after_an_unknown_outcome_the_tenant_stays_quiet_for_the_settle_period(
    redis: Redis, redis_prefix: str
) -> None:
    """The Connector may still be working on a call whose answer was lost: no next call for
    that tenant until the settle period has passed (the lock is kept meanwhile)."""
    calls: list[float] = []
    loop = asyncio.get_running_loop()

    async def post(_: Tenant, endpoint: str, payload: bytes, *, fence: int | None = None):
        calls.append(loop.time())
        if orjson.loads(payload)["n"] == 0:
            return Unknown("HTTP 504 without a response envelope")
        return Delivered({"response": "SUCCESS"})

    async with lane_under_test(redis, redis_prefix, post, settle_s=1.0) as under_test:
        under_test.submit(0)
        under_test.submit(1)
        await asyncio.wait_for(under_test.lane.drain(), 30)
    assert [o.stage for _, o in under_test.answered] == [Stage.UNKNOWN_OUTCOME, None]
    assert calls[1] - calls[0] >= 1.0


async def test_a_lock_whose_last_holder_may_still_be_calling_is_held_quietly_first(
    redis: Redis, redis_prefix: str
) -> None:
    """Taking over a tenant whose previous holder set the calling marker and never settled it
    (it died mid-call): the first call waits the settle period."""
    loop = asyncio.get_running_loop()
    calls: list[float] = []

    async def post(_: Tenant, endpoint: str, payload: bytes, *, fence: int | None = None):
        calls.append(loop.time())
        return Delivered({"response": "SUCCESS"})

    async with lane_under_test(redis, redis_prefix, post, settle_s=1.0) as under_test:
        await redis.set(under_test.locks.keys(TENANT.key).calling, "12345")
        started = loop.time()
        under_test.submit(0)
        await asyncio.wait_for(under_test.lane.drain(), 30)
        assert await redis.exists(under_test.locks.keys(TENANT.key).calling) == 0
    assert calls[0] - started >= 1.0


async def test_a_record_that_cannot_be_encoded_is_answered_alone_and_the_rest_go_on(
    redis: Redis, redis_prefix: str
) -> None:
    deep: object = "bottom"
    for _ in range(400):  # deeper than orjson encodes
        deep = {"level": deep}
    sent: list[int] = []

    async def post(_: Tenant, endpoint: str, payload: bytes, *, fence: int | None = None):
        sent.append(orjson.loads(payload)["n"])
        return Delivered({"response": "SUCCESS"})

    async with lane_under_test(redis, redis_prefix, post) as under_test:
        under_test.submit(0, {"n": 0, "memo": deep})
        for n in range(1, 4):
            under_test.submit(n)
        await asyncio.wait_for(under_test.lane.drain(), 30)
    outcomes = dict(under_test.answered)
    assert outcomes["inv-0"].stage is Stage.VALIDATION
    assert "nothing was sent" in (outcomes["inv-0"].message or "")
    assert [outcomes[f"inv-{n}"].ok for n in range(1, 4)] == [True] * 3
    assert sent == [1, 2, 3]


async def test_withdrawn_records_are_dropped_unanswered_and_never_sent(
    redis: Redis, redis_prefix: str
) -> None:
    """Their partition was revoked: the new owner answers them. The one inside a call when
    they are withdrawn finishes and is answered."""
    in_call = asyncio.Event()
    finish = asyncio.Event()
    sent: list[int] = []

    async def post(_: Tenant, endpoint: str, payload: bytes, *, fence: int | None = None):
        sent.append(orjson.loads(payload)["n"])
        in_call.set()
        await finish.wait()
        return Delivered({"response": "SUCCESS"})

    async with lane_under_test(redis, redis_prefix, post) as under_test:
        for n in range(5):
            under_test.submit(n)
        await asyncio.wait_for(in_call.wait(), 10)
        under_test.lane.withdraw(lambda ticket: ticket != "inv-4")
        finish.set()
        await asyncio.wait_for(under_test.lane.drain(), 30)
    assert sent == [0, 4]
    assert sorted(t for t, _ in under_test.answered) == ["inv-0", "inv-4"]
    assert sorted(under_test.dropped) == ["inv-1", "inv-2", "inv-3"]


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_an_answer_lost_after_the_record_was_stored_is_unknown_and_never_resent(
    running_service,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    sandbox,
    status: int,
) -> None:
    """A proxy in front of the Connector answers 500/502/504 after Sage stored the invoice: the
    record is reported unknown_outcome and dead-lettered, and neither a retry nor a
    redelivery sends it again."""
    await sandbox_post(
        sandbox,
        "/_sandbox/faults",
        {"store_then_fail_rate": 1.0, "store_then_fail_status": status},
    )
    inv = event("inv-lost", invoice(1), type="ar_invoice.create")
    async with running_service(max_attempts=5, settle_after_unknown_s=0.2):
        await produce(kafka_bootstrap, topics.events, [(b"k", inv)])
        [reply] = await collector.wait_for(topics.replies, 1)
        [dead] = await collector.wait_for(topics.dlt, 1)
        await sandbox_post(sandbox, "/_sandbox/faults", {"store_then_fail_rate": 0.0})
        await produce(kafka_bootstrap, topics.events, [(b"k", inv)])  # a redelivery
        replies = await collector.wait_for(topics.replies, 2)
    assert reply.json()["stage"] == "unknown_outcome" and reply.json()["attempts"] == 1
    assert f"HTTP {status}" in reply.json()["message"]
    assert dead.headers["x-error-stage"] == b"unknown_outcome"
    assert replies[1].json()["stage"] == "unknown_outcome"
    assert len(await stored_records(sandbox, "/accountsReceivable")) == 1
    assert (await sandbox_stats(sandbox))["calls"] == 1
