"""Transactional records in-process: one at a time per tenant, ledger, unknown outcomes."""

from __future__ import annotations

import asyncio

import orjson
from pydantic import SecretStr
from redis.asyncio import Redis

from service.breaker import Breakers
from service.connector import Delivered
from service.lanes import Delivery
from service.lanes.retry import Backoff
from service.lanes.serial import SerialLane, SerialPolicy
from service.ledger import Ledger
from service.locks import TenantLocks
from service.settings import Tenant
from tests.support.kafka import Collector, Topics, event, produce
from tests.support.sandbox import sandbox_post, stored_records
from tests.support.sandbox import stats as sandbox_stats


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


async def test_each_call_starts_only_once_the_previous_result_is_in_the_ledger(
    redis_url: str, redis_prefix: str
) -> None:
    """A crash must leave at most the record in flight in doubt: when call k reaches the
    Connector, the ledger already holds call k-1's result (real Redis, stand-in Connector)."""
    redis = Redis.from_url(redis_url)
    tenant = Tenant("1001", "ACME", SecretStr("t"))
    ledger = Ledger(redis, redis_prefix, retention_s=60)
    seen_before_call: list[bytes | None] = []
    answered: list[str] = []

    async def post(_: Tenant, endpoint: str, payload: bytes, *, fence: int | None = None):
        number = orjson.loads(payload)["n"]
        if number:
            key = f"{redis_prefix}:ledger:1001:ACME:inv-{number - 1}"
            seen_before_call.append(await redis.hget(key, "state"))
        return Delivered({"response": "SUCCESS"})

    locks = TenantLocks(redis, redis_prefix, ttl_s=30)
    lane: SerialLane[str] = SerialLane(
        post,
        lambda results: answered.extend(ticket for ticket, _ in results),
        locks,
        ledger,
        SerialPolicy(lock_wait_s=5, max_attempts=1, backoff=Backoff(0.01)),
        Breakers(5, 1.0),
    )
    try:
        for n in range(20):
            lane.submit(
                Delivery(f"inv-{n}", tenant, "/accountsReceivable", {"n": n}, event_id=f"inv-{n}")
            )
        await asyncio.wait_for(lane.drain(), 30)
    finally:
        await locks.aclose()
        await redis.aclose()
    assert answered == [f"inv-{n}" for n in range(20)]
    assert seen_before_call == [b"delivered"] * 19
