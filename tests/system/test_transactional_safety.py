"""Transactional safety against a Connector as harsh as the real one, judged at the server.

The sandbox here ignores fencing headers, finishes calls whose client gave up (they keep their
company occupied until then) and can answer 502/504 after it stored the record. Real replica
processes, the real broker and Redis; every verdict is checked against the sandbox's own
counters and records: no two calls of one company overlapping at the Connector, no invoice
stored twice, every event answered, and one verdict per event when nothing crashed.
"""

from __future__ import annotations

import os
import signal
from collections import Counter, defaultdict
from typing import Any

from service.dev.devstack import start_redis
from service.dev.events import contact, event, produce
from service.dev.replicas import ServiceProcess
from service.dev.sandbox.client import sandbox_post, stored_records
from service.dev.sandbox.client import stats as sandbox_stats
from service.dev.topics import Topics
from tests.conftest import COMPANY, CUSTOMER
from tests.support.kafka import Collector, Received
from tests.support.waiting import throughout, until
from tests.system.conftest import COMPANY_B, CUSTOMER_B
from tests.system.test_serial_replicas import lock_holder_pid

ENDPOINT = "/accountsReceivable"
ONE_COMPANY = [(CUSTOMER, COMPANY)]
TWO_COMPANIES = [(CUSTOMER, COMPANY), (CUSTOMER_B, COMPANY_B)]


def invoices(count: int, tenants: list[tuple[str, str]]) -> list[tuple[bytes, dict[str, Any]]]:
    feed = []
    for n in range(count):
        customer, company = tenants[n % len(tenants)]
        feed.append(
            (
                f"acct-{n % 12}".encode(),
                event(
                    f"inv-{n}",
                    {"InvoiceNo": f"INV{n:05d}", "Amount": n},
                    type="ar_invoice.create",
                    tenant={"customer": customer, "company": company},
                ),
            )
        )
    return feed


def verdicts(replies: list[Received]) -> dict[str, set[tuple[str, str | None]]]:
    """Every distinct (response, stage) each event was given."""
    found: dict[str, set[tuple[str, str | None]]] = defaultdict(set)
    for reply in replies:
        body = reply.json()
        found[body["event_id"]].add((body["response"], body.get("stage")))
    return found


async def assert_safe(
    sandbox: Any, collector: Collector, topics: Topics, count: int, *, crashed: bool = False
) -> dict[str, tuple[str, str | None]]:
    """Every invoice answered; none overlapped or landed twice at the Connector; a SUCCESS
    means stored once; anything stored was reported SUCCESS or unknown_outcome. Without a
    crash, each event has exactly one verdict. Returns each event's final verdict."""
    ids = {f"inv-{n}" for n in range(count)}
    replies = await collector.wait_for_events(topics.replies, ids, timeout_s=180)
    stats = await sandbox_stats(sandbox)
    assert stats["violations"] == 0, f"{stats['violations']} overlapping calls at the Connector"
    stored = Counter(r["record"]["InvoiceNo"] for r in await stored_records(sandbox, ENDPOINT))
    twice = sorted(k for k, v in stored.items() if v > 1)
    assert not twice, f"stored twice: {twice}"
    given = verdicts(replies)
    if not crashed:
        several = {e: v for e, v in given.items() if len(v) > 1}
        assert not several, f"events with contradictory verdicts: {several}"
    final = {r.json()["event_id"]: (r.json()["response"], r.json().get("stage")) for r in replies}
    for n in range(count):
        verdict = final[f"inv-{n}"]
        if verdict[0] == "SUCCESS":
            assert stored[f"INV{n:05d}"] == 1, f"inv-{n} answered SUCCESS but not stored"
        elif stored[f"INV{n:05d}"]:
            assert verdict == ("ERROR", "unknown_outcome"), f"inv-{n} stored, answered {verdict}"
    dead = {d.headers["x-event-id"].decode() for d in collector.messages[topics.dlt]}
    assert dead == {e for e, v in final.items() if v[0] == "ERROR"}
    return final


async def test_calls_slower_than_the_client_timeout_never_overlap_and_502s_are_not_resent(
    replicas, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    """The issue's scenario: 2 replicas, 2 companies, 240 invoices, a 2 s client timeout, one
    call in 40 taking 4 s at the server, one in 25 stored and then answered 502."""
    await sandbox_post(
        sandbox,
        "/_sandbox/faults",
        {
            "slow_rate": 1 / 40,
            "slow_ms": 4000,
            "store_then_fail_rate": 1 / 25,
            "store_then_fail_status": 502,
        },
    )
    settings = {
        "SAGEBRIDGE_HTTP_TIMEOUT_S": "2",
        "SAGEBRIDGE_LOCK_TTL_MS": "4000",
        "SAGEBRIDGE_SETTLE_AFTER_UNKNOWN_S": "3",
    }
    for process in [replicas(**settings) for _ in range(2)]:
        await process.wait_ready()
    await produce(kafka_bootstrap, topics.events, invoices(240, TWO_COMPANIES))
    final = await assert_safe(sandbox, collector, topics, 240)
    stats = await sandbox_stats(sandbox)
    unknown = sum(v == ("ERROR", "unknown_outcome") for v in final.values())
    injected = stats["injected"]["slow"] + stats["injected"]["store_then_fail"]
    assert 0 < unknown <= injected, (unknown, stats["injected"])
    assert stats["abandoned"] > 0, "no call outlived its client: the scenario did not happen"
    print(f"\n240 invoices: {unknown} unknown_outcome, injected {stats['injected']}")


async def test_redis_killed_mid_call_and_restarted_empty(
    replicas, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    """Redis dies while a call is inside the Connector and comes back without its data: the
    replica that was waiting must not take the lock on the empty Redis and call at once."""
    await sandbox_post(sandbox, "/_sandbox/faults", {"latency_ms": 1500})
    redis = start_redis()
    port = redis.port
    settings = {
        "SAGEBRIDGE_REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "SAGEBRIDGE_HTTP_TIMEOUT_S": "2",
        "SAGEBRIDGE_LOCK_TTL_MS": "4000",
        "SAGEBRIDGE_SETTLE_AFTER_UNKNOWN_S": "1",
    }
    try:
        for process in [replicas(**settings) for _ in range(2)]:
            await process.wait_ready()
        await produce(kafka_bootstrap, topics.events, invoices(12, ONE_COMPANY))

        async def calling() -> bool:
            return (await sandbox_stats(sandbox))["in_progress_transactional"] == 1

        await until(calling, 30, "a transactional call inside the Connector")
        redis.popen.kill()
        redis.popen.wait()
        redis = start_redis(port=port)  # the same address, no data
        await assert_safe(sandbox, collector, topics, 12)
    finally:
        redis.stop()


async def test_lock_holder_stopped_past_lease_and_session_timeout(
    replicas,
    kafka_bootstrap: str,
    redis_url: str,
    redis_prefix: str,
    topics: Topics,
    collector: Collector,
    sandbox,
) -> None:
    """SIGSTOP the replica holding the company's lock in the middle of a call that runs on at
    the Connector for longer than the lease (5 s against 4 s), and keep it stopped past the
    group session too. The other replica gets the lock and the partitions meanwhile; it must
    not call while the stopped holder's call still runs, and when the holder wakes up it must
    neither call nor contradict the verdicts its successor gave."""
    await sandbox_post(sandbox, "/_sandbox/faults", {"latency_ms": 100})
    settings = {
        "SAGEBRIDGE_HTTP_TIMEOUT_S": "2",
        "SAGEBRIDGE_LOCK_TTL_MS": "4000",
        "SAGEBRIDGE_SETTLE_AFTER_UNKNOWN_S": "4",
    }
    processes = [replicas(**settings) for _ in range(2)]
    for process in processes:
        await process.wait_ready()
    await produce(kafka_bootstrap, topics.events, invoices(40, ONE_COMPANY))
    await collector.wait_for(topics.replies, 5, timeout_s=60)
    await sandbox_post(sandbox, "/_sandbox/faults", {"slow_rate": 1.0, "slow_ms": 5000})
    holder_pid: int | None = None

    async def holder_in_a_slow_call() -> bool:
        nonlocal holder_pid
        holder_pid = await lock_holder_pid(redis_url, redis_prefix)
        stats = await sandbox_stats(sandbox)
        in_slow_call = stats["in_progress_transactional"] == 1 and stats["injected"]["slow"] > 0
        return holder_pid is not None and in_slow_call

    await until(holder_in_a_slow_call, 30, "the lock holder inside a slow call")
    assert holder_pid is not None
    os.kill(holder_pid, signal.SIGSTOP)
    try:
        await sandbox_post(sandbox, "/_sandbox/faults", {"slow_rate": 0.0})

        async def no_overlap() -> bool:
            return (await sandbox_stats(sandbox))["violations"] == 0

        await throughout(no_overlap, 8.0, "no overlapping call while the holder is stopped")
    finally:
        os.kill(holder_pid, signal.SIGCONT)
    await assert_safe(sandbox, collector, topics, 40)


async def test_scale_up_during_a_connector_outage_gives_no_contradictory_replies(
    replicas, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    """Records wait out an outage behind the breaker; a new replica joins and takes half the
    partitions. The old owner must drop what it has not sent, so each event is answered once."""
    await sandbox_post(sandbox, "/_sandbox/faults", {"down": True})
    first: ServiceProcess = replicas(SAGEBRIDGE_BREAKER_COOLDOWN_MS="200")
    await first.wait_ready()
    feed: list[tuple[bytes, Any]] = list(invoices(60, TWO_COMPANIES))
    feed += [
        (f"c-{n}".encode(), event(f"c-{n}", contact(n, ContactNotes=f"c-{n}"))) for n in range(60)
    ]
    await produce(kafka_bootstrap, topics.events, feed)

    async def outage_seen() -> bool:
        return (await sandbox_stats(sandbox))["injected"]["down"] >= 5

    await until(outage_seen, 30, "the outage to be felt")
    second = replicas(SAGEBRIDGE_BREAKER_COOLDOWN_MS="200")
    await until(second.assigned, 60, "the new replica to get its partitions")
    await sandbox_post(sandbox, "/_sandbox/faults", {"down": False})
    await assert_safe(sandbox, collector, topics, 60)
    replies = await collector.wait_for_events(
        topics.replies, {f"c-{n}" for n in range(60)}, timeout_s=60
    )
    contacts = verdicts([r for r in replies if r.json()["event_id"].startswith("c-")])
    assert all(v == {("SUCCESS", None)} for v in contacts.values()), contacts
    # Nothing crashed: whoever owned a record when the Connector came back answered it, once.
    answered = Counter(r.json()["event_id"] for r in collector.messages[topics.replies])
    twice = sorted(e for e, n in answered.items() if n > 1)
    assert not twice, f"answered by both replicas: {twice[:10]} ({len(twice)} events)"
