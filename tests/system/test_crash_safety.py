"""Crash safety with real processes: SIGKILL the service three times in a mixed run."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from service.dev.events import contact, event, produce
from service.dev.sandbox.client import sandbox_post, stored_records
from service.dev.sandbox.client import stats as sandbox_stats
from service.dev.topics import Topics
from tests.conftest import COMPANY, CUSTOMER
from tests.support.kafka import Collector
from tests.support.waiting import until
from tests.system.conftest import COMPANY_B, CUSTOMER_B

TENANTS = [
    {"customer": CUSTOMER, "company": COMPANY},
    {"customer": CUSTOMER_B, "company": COMPANY_B},
]


def mixed_feed(count: int) -> tuple[list[tuple[bytes, Any]], set[str], set[str]]:
    """Contacts, invoices and invalid events; returns the feed, valid ids and invalid ids."""
    rng = random.Random(11)
    feed: list[tuple[bytes, Any]] = []
    valid, invalid = set(), set()
    for n in range(count):
        tenant = TENANTS[n % 2]
        event_id = f"ev-{n}"
        roll = rng.random()
        if roll < 0.08:
            invalid.add(event_id)
            feed.append(
                (
                    f"bad-{n}".encode(),
                    event(event_id, contact(n, ContactName="x" * 31), tenant=tenant),
                )
            )
        elif roll < 0.10:
            invalid.add(event_id)
            feed.append(
                (
                    f"bad-{n}".encode(),
                    event(event_id, contact(n), type="contact.vanish", tenant=tenant),
                )
            )
        elif roll < 0.30:
            valid.add(event_id)
            feed.append(
                (
                    f"acct-{n % 20}".encode(),
                    event(
                        event_id,
                        {"InvoiceNo": event_id, "Amount": n},
                        type="ar_invoice.create",
                        tenant=tenant,
                    ),
                )
            )
        else:
            valid.add(event_id)
            feed.append(
                (
                    f"contact-{n}".encode(),
                    event(event_id, contact(n, ContactNotes=event_id), tenant=tenant),
                )
            )
    return feed, valid, invalid


async def test_three_kills_lose_nothing_and_send_nothing_twice(
    replicas, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    await sandbox_post(sandbox, "/_sandbox/faults", {"latency_ms": 5})
    feed, valid, invalid = mixed_feed(5000)
    service = replicas()
    await service.wait_ready()
    await produce(kafka_bootstrap, topics.events, feed)
    for fraction in (0.15, 0.40, 0.70):
        await collector.wait_for(topics.replies, int(5000 * fraction), timeout_s=120)
        service.kill()
        service = replicas()
        await service.wait_ready()
    replies = await collector.wait_for_events(topics.replies, valid | invalid, timeout_s=180)

    final: dict[str, dict[str, Any]] = {}
    for reply in replies:  # after a crash a reply may repeat; the last one is the verdict
        final[reply.json()["event_id"]] = reply.json()
    unknown = {eid for eid, body in final.items() if body.get("stage") == "unknown_outcome"}
    assert {eid for eid, body in final.items() if body["response"] == "SUCCESS"} == valid - unknown
    assert {eid for eid, body in final.items() if body["response"] == "ERROR"} == invalid | unknown
    # Only a transactional call cut off by a kill may end in doubt: at most one per kill per tenant.
    assert len(unknown) <= 6 and all(final[e]["type"] == "ar_invoice.create" for e in unknown)

    invoices = Counter(
        r["record"]["InvoiceNo"] for r in await stored_records(sandbox, "/accountsReceivable")
    )
    contacts = Counter(
        r["record"]["ContactNotes"] for r in await stored_records(sandbox, "/customerContacts")
    )
    assert set(invoices) | set(contacts) >= valid - unknown
    assert max(invoices.values()) == 1, "an invoice reached the Connector twice"
    assert max(contacts.values()) == 1, "a contact reached the Connector twice"

    dead = {d.headers["x-event-id"].decode() for d in collector.messages[topics.dlt]}
    assert dead == invalid | unknown
    stats = await sandbox_stats(sandbox)
    assert stats["violations"] == 0
    print(
        f"\n5,000 events, 3 SIGKILLs: {len(replies)} replies ({len(replies) - 5000} repeats), "
        f"{len(unknown)} unknown_outcome, {stats['calls']} connector calls"
    )


async def test_master_data_cut_off_by_a_kill_is_reconciled_not_resent(
    replicas, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    """Kill the service while contact arrays are inside the Connector: after the restart those
    records are looked up in Sage, found, and answered — not sent a second time."""
    await sandbox_post(sandbox, "/_sandbox/faults", {"latency_ms": 400})
    service = replicas(SAGEBRIDGE_BATCH_MAX="20", SAGEBRIDGE_BATCH_WAIT_MS="50")
    await service.wait_ready()
    feed = [
        (f"c-{n}".encode(), event(f"c-{n}", contact(n, ContactNotes=f"c-{n}"))) for n in range(200)
    ]
    await produce(kafka_bootstrap, topics.events, feed)

    async def calls_inside_the_connector() -> bool:
        return (await sandbox_stats(sandbox))["calls_in_progress"] > 0

    await until(calls_inside_the_connector, 30, "contact arrays in flight")
    service.kill()
    cut_off = (await sandbox_stats(sandbox))["calls_in_progress"]
    await sandbox_post(sandbox, "/_sandbox/faults", {"latency_ms": 5})
    service = replicas()
    await service.wait_ready()
    replies = await collector.wait_for_events(
        topics.replies, {f"c-{n}" for n in range(200)}, timeout_s=60
    )
    final = {r.json()["event_id"]: r.json()["response"] for r in replies}
    assert set(final.values()) == {"SUCCESS"}
    stored = Counter(
        r["record"]["ContactNotes"] for r in await stored_records(sandbox, "/customerContacts")
    )
    assert len(stored) == 200
    assert max(stored.values()) == 1, "a contact reached the Connector twice"
    stats = await sandbox_stats(sandbox)
    assert stats["lookups"] > 0, "the records left in doubt were looked up"
    print(f"\n{cut_off} arrays cut off by SIGKILL; {stats['lookups']} lookups; none resent")
