"""Events that never reach the Cloud Connector: each gets one ERROR reply and one dead letter,
and the consumer keeps going."""

from __future__ import annotations

import pytest

from service.dev.events import contact, event, produce
from service.dev.sandbox.client import stats as sandbox_stats
from service.dev.topics import Topics
from tests.conftest import COMPANY, CUSTOMER
from tests.support.kafka import Collector

GOOD = event("good-after", contact(1))

BAD_ENVELOPES = {
    "not-json": (b"{this is not json", "not valid UTF-8 JSON"),
    "not-utf8": (b"\xff\xfe\x00garbage", "not valid UTF-8 JSON"),
    "array": (b"[1, 2, 3]", "expected a JSON object, got an array"),
    "number": (b"42", "expected a JSON object, got a number"),
    "null": (b"null", "expected a JSON object, got null"),
    "no-event-id": (b'{"type": "contact.upsert", "data": {}}', "event_id"),
    "empty-event-id": (b'{"event_id": "", "type": "contact.upsert", "data": {}}', "event_id"),
    "long-event-id": (
        b'{"event_id": "' + b"x" * 129 + b'", "type": "contact.upsert", "data": {}}',
        "event_id: at most 128",
    ),
    "no-type": (b'{"event_id": "e1", "data": {}}', "type"),
    "no-data": (b'{"event_id": "e1", "type": "contact.upsert"}', "data"),
    "data-not-object": (b'{"event_id": "e1", "type": "contact.upsert", "data": [1]}', "data"),
}


@pytest.mark.parametrize("name", list(BAD_ENVELOPES))
async def test_bad_envelope_gets_parse_error_and_consumer_continues(
    name: str,
    running_service,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    sandbox,
) -> None:
    value, expected = BAD_ENVELOPES[name]
    async with running_service():
        await produce(kafka_bootstrap, topics.events, [(b"bad-key", value), (b"K1", GOOD)])
        replies = await collector.wait_for(topics.replies, 2)
        [dead] = await collector.wait_for(topics.dlt, 1)
    bodies = {r.key: r.json() for r in replies}
    error = bodies[b"bad-key"]
    assert error["response"] == "ERROR" and error["stage"] == "parse"
    assert expected in error["message"]
    assert bodies[b"K1"]["response"] == "SUCCESS"
    assert dead.value == value and dead.key == b"bad-key"
    assert dead.headers["x-error-stage"] == b"parse"
    assert dead.headers["x-original-topic"] == topics.events.encode()
    assert {
        "x-error-message",
        "x-event-id",
        "x-original-partition",
        "x-original-offset",
        "x-attempts",
    } <= set(dead.headers)


async def test_unparseable_event_id_is_null_in_reply(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    async with running_service():
        await produce(kafka_bootstrap, topics.events, [(None, b"not json at all")])
        [reply] = await collector.wait_for(topics.replies, 1)
    assert reply.json()["event_id"] is None
    assert reply.json()["response"] == "ERROR"


async def test_unknown_type_is_a_route_error(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    async with running_service():
        await produce(
            kafka_bootstrap,
            topics.events,
            [(b"K", event("e-route", contact(1), type="vendor.upsert"))],
        )
        [reply] = await collector.wait_for(topics.replies, 1)
        await collector.wait_for(topics.dlt, 1)
    assert reply.json()["stage"] == "route"
    assert "vendor.upsert" in reply.json()["message"]
    assert (await sandbox_stats(sandbox))["calls"] == 0


async def test_unknown_tenant_is_a_route_error_and_no_call_is_made(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    stranger = event("e-tenant", contact(1), tenant={"customer": "9999", "company": "EVIL"})
    async with running_service():
        await produce(kafka_bootstrap, topics.events, [(b"K", stranger)])
        [reply] = await collector.wait_for(topics.replies, 1)
        [dead] = await collector.wait_for(topics.dlt, 1)
    assert reply.json()["stage"] == "route"
    assert "unknown tenant" in reply.json()["message"]
    assert dead.headers["x-event-id"] == b"e-tenant"
    assert (await sandbox_stats(sandbox))["calls"] == 0


async def test_contract_violation_reply_lists_every_bad_field(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    data = contact(1, ContactName="x" * 41, State="TEXAS", Nickname="Jo")
    del data["ContactCode"]
    async with running_service():
        await produce(kafka_bootstrap, topics.events, [(b"K", event("crm-000124", data))])
        [reply] = await collector.wait_for(topics.replies, 1)
        [dead] = await collector.wait_for(topics.dlt, 1)
    body = reply.json()
    assert body["response"] == "ERROR" and body["stage"] == "validation"
    assert body["event_id"] == "crm-000124" and body["correlation_id"] == "crm-000124"
    assert body["type"] == "contact.upsert"
    assert {"field": "ContactName", "code": "too_long", "limit": 30, "actual": 41} in body["errors"]
    assert {"field": "State", "code": "too_long", "limit": 2, "actual": 5} in body["errors"]
    assert {"field": "ContactCode", "code": "missing"} in body["errors"]
    assert {"field": "Nickname", "code": "unknown_field"} in body["errors"]
    assert "ContactName: at most 30 characters, got 41" in body["message"]
    assert dead.headers["x-error-stage"] == b"validation"
    assert body["tenant"] == {"customer": CUSTOMER, "company": COMPANY}
