"""Transactional records in-process: one at a time per tenant, ledger, unknown outcomes."""

from __future__ import annotations

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
