"""SIGTERM with a transactional backlog, as a rolling update sends it: the replica starts no new
call, finishes the one in flight even past ``DRAIN_TIMEOUT_S``, answers it and exits; the next
replica answers the rest. Real replica processes, the real broker and Redis; the sandbox takes
a second per call and is the judge."""

from __future__ import annotations

from service.dev.events import produce
from service.dev.sandbox.client import sandbox_post, stored_records
from service.dev.sandbox.client import stats as sandbox_stats
from service.dev.topics import Topics
from tests.support.kafka import Collector
from tests.support.waiting import until
from tests.system.test_transactional_safety import ENDPOINT, ONE_COMPANY, assert_safe, invoices

BACKLOG = 12


async def test_sigterm_mid_call_finishes_that_call_and_leaves_the_backlog_to_the_next_replica(
    replicas, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    await sandbox_post(sandbox, "/_sandbox/faults", {"latency_ms": 1000})
    # The drain timeout is shorter than one call: the call in flight must outlive it.
    service = replicas(SAGEBRIDGE_DRAIN_TIMEOUT_S="0.2")
    await service.wait_ready()
    await produce(kafka_bootstrap, topics.events, invoices(BACKLOG, ONE_COMPANY))

    async def second_call_inside() -> bool:
        stats = await sandbox_stats(sandbox)
        return stats["calls"] >= 2 and stats["calls_in_progress"] == 1

    await until(second_call_inside, 60, "an invoice's call inside the Connector")
    assert service.terminate(timeout_s=20) == 0

    stored = {r["record"]["InvoiceNo"] for r in await stored_records(sandbox, ENDPOINT)}
    assert (await sandbox_stats(sandbox))["calls_in_progress"] == 0
    assert 2 <= len(stored) < BACKLOG, "stopped mid-backlog, the call in flight finished"
    answered = {
        r.json()["event_id"]: r.json()["response"] for r in collector.messages[topics.replies]
    }
    first_replica = {f"inv-{int(no[3:])}" for no in stored}
    assert {e: answered.get(e) for e in first_replica} == dict.fromkeys(first_replica, "SUCCESS"), (
        "every invoice the stopping replica sent, the one in flight included, answered SUCCESS"
    )

    successor = replicas()
    await successor.wait_ready()
    final = await assert_safe(sandbox, collector, topics, BACKLOG)
    assert set(final.values()) == {("SUCCESS", None)}, "no unknown_outcome"
