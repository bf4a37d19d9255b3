"""A replica that starts while Redis is empty must not take the emptiness for a fresh start.

Replica A sends the deployment's first invoice to a Connector that takes 25 s over it; A is
frozen mid-call (SIGSTOP: it can notice nothing), and Redis restarts empty (FLUSHALL). Replica B
starts. Nothing was ever committed, and B's partitions may be ones that never were, so "no
committed offsets for my partitions" proves nothing: B must wait out the same quarantine as a
declared loss, and then report the invoice ``unknown_outcome``, never send it beside A's call.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from service.dev.devstack import start_redis
from service.dev.events import event, produce
from service.dev.processes import Process
from service.dev.sandbox.client import sandbox_post, stats, stored_records
from service.dev.topics import Topics
from tests.support.kafka import Collector
from tests.support.waiting import until

SLOW_CALL_MS = 25_000


@pytest.fixture
def private_redis() -> Iterator[Process]:
    process = start_redis()
    yield process
    process.stop()


async def test_a_replica_starting_on_an_emptied_redis_waits_out_the_quarantine(
    replicas, kafka_bootstrap: str, topics: Topics, sandbox, private_redis: Process
) -> None:
    url = f"redis://127.0.0.1:{private_redis.port}/0"
    first = replicas(SAGEBRIDGE_REDIS_URL=url)
    await first.wait_ready(60)
    await sandbox_post(sandbox, "/_sandbox/faults", {"slow_rate": 1.0, "slow_ms": SLOW_CALL_MS})
    collector = await Collector(kafka_bootstrap, [topics.replies]).start()
    try:
        invoice = event("inv-1", {"InvoiceNo": "INV000001"}, type="ar_invoice.create")
        await produce(kafka_bootstrap, topics.events, [(b"inv-1", invoice)])

        async def in_progress() -> bool:
            return (await stats(sandbox))["in_progress_transactional"] == 1

        await until(in_progress, 30, "the first replica's call to reach the Connector")
        os.kill(first.pid, signal.SIGSTOP)  # frozen mid-call: its call runs on at the Connector
        redis = Redis.from_url(url)
        await redis.flushall()  # Redis restarted without persistence
        await redis.aclose()

        replicas(SAGEBRIDGE_REDIS_URL=url)
        [reply] = await collector.wait_for(topics.replies, 1, timeout_s=60)
        during = await stats(sandbox)

        async def stored() -> bool:
            return len(await stored_records(sandbox, "/accountsReceivable")) >= 1

        await until(stored, SLOW_CALL_MS / 1000 + 30, "the first replica's call to end")
        after = await stats(sandbox)
    finally:
        await collector.stop()
        first.kill()

    assert after["violations"] == 0 and after["max_concurrent_transactional"] == 1, after
    assert during["in_progress_transactional"] == 1, "B answered while A's call still ran"
    assert reply.json()["stage"] == "unknown_outcome", reply.json()
    assert "Redis lost the ledger" in reply.json()["message"]
    assert after["calls"] == 1, "the second replica made no call"
    assert len(await stored_records(sandbox, "/accountsReceivable")) == 1
