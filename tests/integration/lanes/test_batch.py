"""Master data end to end: Kafka in, batched arrays to the sandbox over HTTP, replies out."""

from __future__ import annotations

import time

from service.dev.events import contact, event, produce
from service.dev.sandbox.client import sandbox_post, stored_records
from service.dev.sandbox.client import stats as sandbox_stats
from service.dev.topics import Topics, create_topics
from tests.support.kafka import Collector


async def test_thousand_contacts_land_in_few_calls(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    events = [(f"K{n}".encode(), event(f"evt-{n}", contact(n))) for n in range(1000)]
    async with running_service():
        started = time.monotonic()
        await produce(kafka_bootstrap, topics.events, events)
        replies = await collector.wait_for(topics.replies, 1000)
        elapsed = time.monotonic() - started
    bodies = [r.json() for r in replies]
    assert {b["event_id"] for b in bodies} == {f"evt-{n}" for n in range(1000)}
    assert all(b["response"] == "SUCCESS" for b in bodies), [
        b for b in bodies if b["response"] != "SUCCESS"
    ][:3]
    assert all(b["endpoint"] == "/customerContacts" and b["attempts"] == 1 for b in bodies)
    stats = await sandbox_stats(sandbox)
    assert stats["records"] == 1000
    assert stats["calls"] <= 20, stats
    print(f"\n1,000 contacts: {stats['calls']} connector calls, {elapsed:.2f}s wall")
    assert collector.messages[topics.dlt] == []


async def test_rejected_records_are_isolated_and_the_rest_land(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    await sandbox_post(sandbox, "/_sandbox/faults", {"reject_marker": "SAGE-SAYS-NO"})
    bad = {13, 50, 88}
    events = [
        (
            f"K{n}".encode(),
            event(f"evt-{n}", contact(n, ContactNotes="SAGE-SAYS-NO" if n in bad else "fine")),
        )
        for n in range(100)
    ]
    async with running_service(batch_max=100, batch_wait_ms=1000):
        await produce(kafka_bootstrap, topics.events, events)
        replies = await collector.wait_for(topics.replies, 100)
        dead = await collector.wait_for(topics.dlt, 3)
    by_id = {r.json()["event_id"]: r.json() for r in replies}
    failed = {eid for eid, body in by_id.items() if body["response"] == "ERROR"}
    assert failed == {f"evt-{n}" for n in bad}
    for n in bad:
        body = by_id[f"evt-{n}"]
        assert body["stage"] == "connector"
        assert "ContactNotes" in body["message"] and "rejected" in body["message"]
    stored = await stored_records(sandbox, "/customerContacts")
    assert sorted(r["record"]["ContactCode"] for r in stored) == sorted(
        contact(n)["ContactCode"] for n in range(100) if n not in bad
    )
    assert {d.headers["x-event-id"].decode() for d in dead} == {f"evt-{n}" for n in bad}
    assert all(d.headers["x-error-stage"] == b"connector" for d in dead)
    stats = await sandbox_stats(sandbox)
    print(f"\n3 bad in 100: {stats['calls']} calls to isolate")


async def test_updates_to_one_record_arrive_in_order(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    """Twenty versions of each of five contacts, interleaved; with small batches and several
    calls in flight, the sandbox must still see each contact's versions in produced order."""
    events = []
    for version in range(20):
        for n in range(5):
            events.append(
                (
                    f"K{n}".encode(),
                    event(f"evt-{n}-{version}", contact(n, ContactNotes=f"v{version:02d}")),
                )
            )
    async with running_service(batch_max=3, batch_wait_ms=5, batch_concurrency=8):
        await produce(kafka_bootstrap, topics.events, events)
        await collector.wait_for(topics.replies, 100)
    stored = await stored_records(sandbox, "/customerContacts")
    for n in range(5):
        versions = [
            r["record"]["ContactNotes"]
            for r in stored
            if r["record"]["ContactCode"] == contact(n)["ContactCode"]
        ]
        assert versions == [f"v{v:02d}" for v in range(20)]


async def test_reply_to_is_honoured_and_correlation_carried(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector
) -> None:
    custom = f"{topics.replies}-custom"
    await create_topics(kafka_bootstrap, [custom])
    mine = Collector(kafka_bootstrap, [custom])
    await mine.start()
    try:
        async with running_service():
            await produce(
                kafka_bootstrap,
                topics.events,
                [
                    (b"K1", event("evt-1", contact(1), reply_to=custom, correlation_id="req-77")),
                    (b"K2", event("evt-2", contact(2))),
                ],
            )
            [custom_reply] = await mine.wait_for(custom, 1)
            [default_reply] = await collector.wait_for(topics.replies, 1)
    finally:
        await mine.stop()
    assert custom_reply.json()["event_id"] == "evt-1"
    assert custom_reply.json()["correlation_id"] == "req-77"
    assert custom_reply.headers["correlation_id"] == b"req-77"
    assert custom_reply.key == b"K1"
    assert default_reply.json()["event_id"] == "evt-2"
    assert default_reply.json()["correlation_id"] == "evt-2"


async def test_two_tenants_never_share_a_call(
    running_service,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    tmp_path,
    monkeypatch,
) -> None:
    """Each token is bound to its tenant in the sandbox: a mixed array, or one tenant's records
    sent with the other's token, would be refused."""
    from service.dev.sandbox import SandboxOptions, SandboxThread
    from tests.conftest import COMPANY, CUSTOMER, TOKEN

    other = "token-for-beta-51e0"
    tokens = (f"{TOKEN}={CUSTOMER}/{COMPANY}", f"{other}=2002/BETA")
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text("tenants:\n  - {customer: '2002', company: BETA, token_env: BETA_TOKEN}\n")
    monkeypatch.setenv("BETA_TOKEN", other)
    feed = []
    for n in range(200):
        tenant = {"customer": "2002", "company": "BETA"} if n % 2 else None  # None: default
        feed.append(
            (
                f"K{n}".encode(),
                event(
                    f"t-{n}",
                    contact(n, ContactNotes=f"t-{n}"),
                    **({"tenant": tenant} if tenant else {}),
                ),
            )
        )
    with SandboxThread(SandboxOptions(port=0, tokens=tokens)) as bound:
        async with running_service(connector_url=bound.url, tenants_file=tenants):
            await produce(kafka_bootstrap, topics.events, feed)
            replies = await collector.wait_for(topics.replies, 200)
        stored = await stored_records(bound, "/customerContacts")
        calls = (await sandbox_stats(bound))["calls"]
    assert all(r.json()["response"] == "SUCCESS" for r in replies)
    owner = {f"t-{n}": ("2002", "BETA") if n % 2 else (CUSTOMER, COMPANY) for n in range(200)}
    assert all((r["customer"], r["company"]) == owner[r["record"]["ContactNotes"]] for r in stored)
    assert len(stored) == 200 and calls >= 2
