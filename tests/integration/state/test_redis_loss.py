"""A Redis that lost its data while no replica was running: the committed offsets witness it.

The service delivers invoices and commits; then Redis is emptied (a restart without
persistence) while the service is down, and the group's offsets are rewound, so invoices that
were delivered come again. Nothing in Redis remembers them; the service must not send them a
second time.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.asyncio import Redis

from service.dev.devstack import start_redis
from service.dev.events import event, produce
from service.dev.processes import Process
from service.dev.sandbox.client import stored_records
from service.dev.topics import Topics
from tests.support.kafka import Collector


@pytest.fixture
def event_partitions() -> int:
    return 1


@pytest.fixture
def private_redis() -> Iterator[Process]:
    process = start_redis()
    yield process
    process.stop()


async def rewind(bootstrap: str, topics: Topics, offset: int) -> None:
    """Commit ``offset`` for the service's group: what a crash before its commits would leave."""
    consumer = AIOKafkaConsumer(
        topics.events,
        bootstrap_servers=bootstrap,
        group_id=topics.group,
        enable_auto_commit=False,
        session_timeout_ms=3000,
        heartbeat_interval_ms=600,
    )
    partition = TopicPartition(topics.events, 0)
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=10_000, max_records=1)  # joined, partition assigned
        await consumer.commit({partition: offset})
    finally:
        await consumer.stop()


async def test_redeliveries_after_redis_was_emptied_while_down_are_not_resent(
    running_service,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    sandbox,
    private_redis: Process,
) -> None:
    settings = {
        "redis_url": f"redis://127.0.0.1:{private_redis.port}/0",
        "lock_ttl_ms": 2000,
        "http_timeout_s": 1,
        "settle_after_unknown_s": 0.5,
    }
    invoices = [
        (b"k", event(f"inv-{n}", {"InvoiceNo": f"I{n}"}, type="ar_invoice.create"))
        for n in range(5)
    ]
    async with running_service(**settings):
        await produce(kafka_bootstrap, topics.events, invoices)
        await collector.wait_for(topics.replies, 5)
    redis = Redis.from_url(settings["redis_url"])
    await redis.flushall()  # Redis restarted without persistence
    await redis.aclose()
    await rewind(kafka_bootstrap, topics, 2)  # inv-2..4 were delivered, not committed
    async with running_service(**settings):
        replies = await collector.wait_for(topics.replies, 8)
    again = {r.json()["event_id"]: r.json() for r in replies[5:]}
    assert sorted(again) == ["inv-2", "inv-3", "inv-4"]
    assert all(body["stage"] == "unknown_outcome" for body in again.values()), again
    assert "Redis lost the ledger" in again["inv-2"]["message"]
    assert len(await stored_records(sandbox, "/accountsReceivable")) == 5
