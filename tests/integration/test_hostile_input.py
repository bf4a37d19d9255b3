"""Hostile values: each gets exactly one ERROR reply and one dead letter, nothing reaches the
Cloud Connector, and a good event right after it still succeeds. One service serves the whole
module (the claim is precisely that it keeps going)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from service.app import create_app
from service.config import load_settings
from service.dev.events import contact, event
from service.dev.sandbox import SandboxOptions, SandboxThread
from service.dev.sandbox.client import stats as sandbox_stats
from service.dev.sandbox.client import stored_records
from service.dev.topics import Topics, create_topics
from service.tenants import TenantDirectory
from tests.conftest import COMPANY, CUSTOMER, TOKEN
from tests.support.hostile import HOSTILE, MIB, deep_invoice
from tests.support.kafka import Collector


@pytest.fixture(scope="module")
async def stack(kafka_bootstrap: str, redis_url: str) -> AsyncIterator[dict[str, Any]]:
    topics = Topics.fresh()
    await create_topics(kafka_bootstrap, [topics.events, topics.replies, topics.dlt])
    sandbox = SandboxThread(SandboxOptions(port=0, tokens=(TOKEN,))).start()
    collector = await Collector(kafka_bootstrap, [topics.replies, topics.dlt]).start()
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap,
        input_topics=topics.events,
        group_id=topics.group,
        reply_topic=topics.replies,
        dlt_topic=topics.dlt,
        redis_url=redis_url,
        redis_prefix=f"test-{uuid.uuid4().hex[:8]}",
        connector_url=sandbox.url,
        auth_token=TOKEN,
        customer=CUSTOMER,
        company=COMPANY,
        http_port=0,
        kafka_session_timeout_ms=3000,
        batch_wait_ms=20,
    )
    app, _ = create_app(settings, TenantDirectory.from_settings(settings))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=16 * MIB)
    await producer.start()
    await app.start()
    try:
        yield {"topics": topics, "sandbox": sandbox, "collector": collector, "producer": producer}
    finally:
        await app.stop()
        await producer.stop()
        await collector.stop()
        sandbox.stop()


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_hostile_value_is_answered_and_the_consumer_keeps_going(
    name: str, stack: dict[str, Any]
) -> None:
    value, stage = HOSTILE[name]
    topics: Topics = stack["topics"]
    collector: Collector = stack["collector"]
    calls_before = (await sandbox_stats(stack["sandbox"]))["calls"]
    bad_key, good_key = f"bad-{name}".encode(), f"good-{name}".encode()
    good = orjson.dumps(event(f"good-{name}", contact(7, ContactNotes=name[:50])))
    await stack["producer"].send_and_wait(topics.events, value, key=bad_key)
    await stack["producer"].send_and_wait(topics.events, good, key=good_key)

    await collector.wait_for_keys(topics.replies, {bad_key, good_key})
    replies = [r for r in collector.messages[topics.replies] if r.key in (bad_key, good_key)]
    by_key = {r.key: r.json() for r in replies}
    assert len(replies) == 2, "exactly one reply each"
    assert by_key[bad_key]["response"] == "ERROR"
    assert by_key[bad_key]["stage"] == stage, by_key[bad_key]
    assert len(orjson.dumps(by_key[bad_key])) < 20_000, "replies stay small"
    assert by_key[good_key]["response"] == "SUCCESS"

    await collector.wait_for_keys(topics.dlt, {bad_key})
    [dead] = [d for d in collector.messages[topics.dlt] if d.key == bad_key]
    if len(value) <= 1_000_000:
        assert dead.value == value, "the dead letter keeps the original bytes"
    else:  # bigger than the limit: the value stays in the input topic, the header says why
        assert dead.value is None and b"bytes" in dead.headers["x-value-omitted"]
    assert dead.headers["x-error-stage"] == stage.encode()
    assert all(b"\r" not in v and b"\n" not in v for v in dead.headers.values())
    # Only the good event reached the Cloud Connector.
    assert (await sandbox_stats(stack["sandbox"]))["calls"] - calls_before == 1


async def test_non_utf8_header_does_not_lose_the_poll(stack: dict[str, Any]) -> None:
    """Headers are the producer's business: a header that is not UTF-8 must not make the
    consumer drop the records it fetched with it."""
    topics: Topics = stack["topics"]
    collector: Collector = stack["collector"]
    key = b"bad-header"
    await stack["producer"].send_and_wait(
        topics.events,
        orjson.dumps(event("bad-header", contact(3))),
        key=key,
        headers=[("trace", b"\xff\xfe\xfd")],
    )
    await collector.wait_for_keys(topics.replies, {key})
    [reply] = [r for r in collector.messages[topics.replies] if r.key == key]
    assert reply.json()["response"] == "SUCCESS"


async def test_a_deep_invoice_is_refused_and_the_companys_next_invoices_go_through(
    stack: dict[str, Any],
) -> None:
    """Issue 11's poison record: 400 levels deep, it passed the envelope and then broke the
    ledger's fingerprint inside the company's serial lane, which waited behind it for good."""
    topics: Topics = stack["topics"]
    collector: Collector = stack["collector"]
    invoices = [
        (f"next-invoice-{n}".encode(), orjson.dumps(invoice(f"next-invoice-{n}"))) for n in range(3)
    ]
    await stack["producer"].send_and_wait(topics.events, deep_invoice(400), key=b"deep-400")
    for key, value in invoices:
        await stack["producer"].send_and_wait(topics.events, value, key=key)

    keys = {b"deep-400", *(key for key, _ in invoices)}
    replies = await collector.wait_for_keys(topics.replies, keys)
    by_key = {r.key: r.json() for r in replies if r.key in keys}
    refusal = by_key.pop(b"deep-400")
    assert refusal["stage"] == "validation"
    assert "nested more than 64 levels deep" in refusal["message"]
    assert {body["response"] for body in by_key.values()} == {"SUCCESS"}
    await collector.wait_for_keys(topics.dlt, {b"deep-400"})
    stored = await stored_records(stack["sandbox"], "/accountsReceivable")
    numbers = {r["record"].get("InvoiceNo") for r in stored}
    assert {f"next-invoice-{n}" for n in range(3)} <= numbers


def invoice(number: str) -> dict[str, Any]:
    return event(number, {"InvoiceNo": number, "Amount": 10.5}, type="ar_invoice.create")
