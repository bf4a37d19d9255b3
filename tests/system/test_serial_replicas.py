"""The serial lane across real replicas: one call at a time per tenant, whatever happens."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

from redis.asyncio import Redis

from service.dev.devstack import start_redis
from service.dev.events import event, produce
from service.dev.sandbox.client import stats as sandbox_stats
from service.dev.sandbox.client import stored_records
from service.dev.topics import Topics
from tests.conftest import COMPANY, CUSTOMER
from tests.support.kafka import Collector
from tests.support.waiting import throughout, until
from tests.system.conftest import COMPANY_B, CUSTOMER_B

TENANTS = [(CUSTOMER, COMPANY), (CUSTOMER_B, COMPANY_B)]
ENDPOINT = "/accountsReceivable"


def invoices(count: int) -> list[tuple[bytes, dict[str, object]]]:
    feed = []
    for n in range(count):
        customer, company = TENANTS[n % 2]
        data = {"InvoiceNo": f"INV{n:05d}", "Amount": n}
        feed.append(
            (
                f"acct-{n % 12}".encode(),
                event(
                    f"inv-{n}",
                    data,
                    type="ar_invoice.create",
                    tenant={"customer": customer, "company": company},
                ),
            )
        )
    return feed


async def test_three_replicas_never_overlap_and_tenants_run_in_parallel(
    replicas, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    processes = [replicas() for _ in range(3)]
    for process in processes:
        await process.wait_ready()
    started = time.monotonic()
    await produce(kafka_bootstrap, topics.events, invoices(300))
    replies = await collector.wait_for(topics.replies, 300, timeout_s=120)
    elapsed = time.monotonic() - started
    assert Counter(r.json()["response"] for r in replies) == {"SUCCESS": 300}
    stats = await sandbox_stats(sandbox)
    assert stats["violations"] == 0
    assert stats["max_concurrent_transactional"] == 1
    assert stats["max_parallel_tenants"] == 2  # the two tenants' lanes did run side by side
    assert stats["stale_fences"] == 0 and stats["unfenced_calls"] == 0
    print(
        f"\n300 invoices, 3 replicas, 20 ms sandbox latency: {elapsed:.2f}s "
        f"(one-at-a-time for all would be >= {300 * 0.02:.1f}s)"
    )


async def lock_holder_pid(redis_url: str, prefix: str) -> int | None:
    redis = Redis.from_url(redis_url)
    try:
        for customer, company in TENANTS:
            owner = await redis.get(f"{prefix}:lock:{customer}:{company}")
            if owner:
                return int(owner.decode().split(":")[1])
    finally:
        await redis.aclose()
    return None


async def test_killing_the_lock_holder_loses_nothing_and_sends_nothing_twice(
    replicas,
    kafka_bootstrap: str,
    redis_url: str,
    redis_prefix: str,
    topics: Topics,
    collector: Collector,
    sandbox,
) -> None:
    processes = [replicas() for _ in range(3)]
    for process in processes:
        await process.wait_ready()
    await produce(kafka_bootstrap, topics.events, invoices(300))
    await collector.wait_for(topics.replies, 60, timeout_s=60)
    holder_pid: int | None = None

    async def holder_found() -> bool:
        nonlocal holder_pid
        holder_pid = await lock_holder_pid(redis_url, redis_prefix)
        return holder_pid is not None

    await until(holder_found, 30, "a replica holding a tenant lock")
    victim = next(p for p in processes if p.pid == holder_pid)
    victim.kill()
    replacement = replicas()
    await replacement.wait_ready()
    replies = await collector.wait_for_events(
        topics.replies, {f"inv-{n}" for n in range(300)}, timeout_s=120
    )
    stored = await stored_records(sandbox, ENDPOINT)
    numbers = Counter(r["record"]["InvoiceNo"] for r in stored)
    assert max(numbers.values()) == 1, [k for k, v in numbers.items() if v > 1]
    stats = await sandbox_stats(sandbox)
    assert stats["violations"] == 0 and stats["max_concurrent_transactional"] == 1
    outcomes = Counter((r.json()["response"], r.json().get("stage")) for r in replies)
    # Every invoice either landed once or was reported unknown_outcome (killed mid-call).
    landed = {f"inv-{int(k[3:])}" for k in numbers}
    for r in replies:
        body = r.json()
        if body["response"] == "SUCCESS":
            assert body["event_id"] in landed
        else:
            assert body["stage"] == "unknown_outcome", body
    print(f"\nafter SIGKILL of the holder: {dict(outcomes)}")


async def test_redis_outage_pauses_the_lane_and_loses_nothing(
    replicas,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    sandbox,
    redis_prefix: str,
) -> None:
    private = start_redis()
    try:
        url = f"redis://127.0.0.1:{private.port}/0"
        processes = [replicas(SAGEBRIDGE_REDIS_URL=url) for _ in range(2)]
        for process in processes:
            await process.wait_ready()
        await produce(kafka_bootstrap, topics.events, invoices(200))
        await collector.wait_for(topics.replies, 40, timeout_s=60)
        os.kill(private.popen.pid, signal.SIGSTOP)
        try:
            for process in processes:
                await until(lambda p=process: _unready(p), 20, "readiness to report Redis down")

            async def idle() -> bool:
                return (await sandbox_stats(sandbox))["in_progress_transactional"] == 0

            await until(idle, 20, "calls begun under a lock held before the outage to end")
            calls_at_outage = (await sandbox_stats(sandbox))["calls"]

            async def no_new_calls() -> bool:
                return (await sandbox_stats(sandbox))["calls"] == calls_at_outage

            await throughout(no_new_calls, 3.0, "no transactional call while Redis is down")
        finally:
            os.kill(private.popen.pid, signal.SIGCONT)
        replies = await collector.wait_for(topics.replies, 200, timeout_s=120)
    finally:
        private.stop()
    assert Counter(r.json()["response"] for r in replies) == {"SUCCESS": 200}
    stats = await sandbox_stats(sandbox)
    assert stats["violations"] == 0 and stats["stale_fences"] == 0
    assert stats["unfenced_calls"] == 0
    stored = await stored_records(sandbox, ENDPOINT)
    assert len(stored) == 200


async def _unready(process) -> bool:
    return not await process.ready()
