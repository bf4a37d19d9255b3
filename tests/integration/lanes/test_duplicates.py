"""The same ``event_id`` twice among a tenant's queued records (a producer's retry, a replay),
end to end: the real broker, Redis and the sandbox over HTTP. Every record gets exactly one
reply, the sandbox stores each event once, and the committed offset reaches the log end."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from service.dev.contracts import contracts_with_arrays
from service.dev.events import contact, event, produce
from service.dev.sandbox.client import sandbox_post, stored_records
from service.dev.sandbox.client import stats as sandbox_stats
from service.dev.topics import Topics
from tests.support.kafka import Collector, committed
from tests.support.waiting import until


@pytest.fixture
def event_partitions() -> int:
    return 1


def the_issues_feed(make: Any, type_: str) -> list[tuple[bytes, dict[str, Any]]]:
    """22 events: ``n-5`` produced twice back to back, as a producer's retry does; ``n-9``
    twice with different data."""
    feed: list[tuple[bytes, dict[str, Any]]] = []
    for n in range(20):
        feed.append((b"k", event(f"n-{n}", make(n), type=type_)))
        if n == 5:
            feed.append((b"k", event("n-5", make(5), type=type_)))
        if n == 9:
            feed.append((b"k", event("n-9", make(9, changed=True), type=type_)))
    return feed


def invoice(n: int, *, changed: bool = False) -> dict[str, Any]:
    return {"InvoiceNo": f"INV{n:05d}", "Amount": 999 if changed else n}


def a_contact(n: int, *, changed: bool = False) -> dict[str, Any]:
    return contact(n, ContactNotes="changed" if changed else "first")


def assert_one_reply_each(collector: Collector, topics: Topics) -> dict[str, list[Any]]:
    """Every one of the 22 records answered once: each event's replies, in order."""
    replies = [r.json() for r in collector.messages[topics.replies]]
    assert len(replies) == 22, Counter(r["event_id"] for r in replies)
    by_event: dict[str, list[Any]] = {}
    for reply in replies:
        by_event.setdefault(reply["event_id"], []).append(reply)
    assert all(r["response"] == "SUCCESS" for e, rs in by_event.items() for r in rs if e != "n-9")
    assert [len(by_event[f"n-{n}"]) for n in range(20)] == [
        2 if n in (5, 9) else 1 for n in range(20)
    ]
    first, second = by_event["n-9"]
    assert first["response"] == "SUCCESS"
    assert second["response"] == "ERROR" and "already used" in second["message"], second
    return by_event


async def test_queued_invoices_with_repeats_in_arrays_get_one_reply_each_and_are_stored_once(
    running_service,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    sandbox,
    tmp_path: Path,
) -> None:
    """The issue's setup: ar_invoice.create in arrays of 10, 22 records queued before the
    service takes them in (as behind a paused company)."""
    await produce(kafka_bootstrap, topics.events, the_issues_feed(invoice, "ar_invoice.create"))
    contracts = contracts_with_arrays(tmp_path / "contracts", 10)
    async with running_service(contracts_dir=contracts):
        await collector.wait_for(topics.replies, 22)

        async def commits_at_the_end() -> bool:
            return await committed(kafka_bootstrap, topics) == 22

        await until(commits_at_the_end, 30, "the committed offset to reach the log end")
    assert_one_reply_each(collector, topics)
    stored = Counter(
        r["record"]["InvoiceNo"] for r in await stored_records(sandbox, "/accountsReceivable")
    )
    assert stored == Counter(invoice(n)["InvoiceNo"] for n in range(20))
    stored_nine = [r["record"] for r in await stored_records(sandbox, "/accountsReceivable")]
    assert invoice(9) in stored_nine, "the first copy's data is what Sage holds"
    assert len(collector.messages[topics.dlt]) == 1


async def test_queued_contacts_with_repeats_get_one_reply_each_and_are_stored_once(
    running_service,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    sandbox,
) -> None:
    """The batch lane: both copies of n-5 (and of n-9) arrive in one poll and one batch."""
    await produce(kafka_bootstrap, topics.events, the_issues_feed(a_contact, "contact.upsert"))
    async with running_service(batch_max=50, batch_wait_ms=200):
        await collector.wait_for(topics.replies, 22)

        async def commits_at_the_end() -> bool:
            return await committed(kafka_bootstrap, topics) == 22

        await until(commits_at_the_end, 30, "the committed offset to reach the log end")
    assert_one_reply_each(collector, topics)
    stored = Counter(
        r["record"]["ContactCode"] for r in await stored_records(sandbox, "/customerContacts")
    )
    assert stored == Counter(contact(n)["ContactCode"] for n in range(20))


async def test_a_contact_repeated_while_its_first_copy_is_inside_a_call_is_answered_from_the_ledger(
    running_service,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    sandbox,
) -> None:
    """The batch lane, two batches: the copies arrive while the first copies' call is still
    inside the Connector (calls of the same contacts never overlap, so they would follow it)."""
    feed = the_issues_feed(a_contact, "contact.upsert")
    later = [feed.index(m) for m in feed if m[1]["event_id"] in ("n-5", "n-9")][1::2]
    copies = [feed[i] for i in later]
    firsts = [m for i, m in enumerate(feed) if i not in later]
    await sandbox_post(sandbox, "/_sandbox/faults", {"latency_ms": 1500})
    async with running_service(batch_max=50, batch_wait_ms=50):
        await produce(kafka_bootstrap, topics.events, firsts)

        async def first_call_inside() -> bool:
            return (await sandbox_stats(sandbox))["calls_in_progress"] == 1

        await until(first_call_inside, 30, "the first copies' call inside the Connector")
        await produce(kafka_bootstrap, topics.events, copies)
        await collector.wait_for(topics.replies, 22)

        async def commits_at_the_end() -> bool:
            return await committed(kafka_bootstrap, topics) == 22

        await until(commits_at_the_end, 30, "the committed offset to reach the log end")
    assert_one_reply_each(collector, topics)
    stored = Counter(
        r["record"]["ContactCode"] for r in await stored_records(sandbox, "/customerContacts")
    )
    assert stored == Counter(contact(n)["ContactCode"] for n in range(20))
    assert (await sandbox_stats(sandbox))["calls"] == 1, "the copies were answered without a call"
