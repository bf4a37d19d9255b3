"""Connector outage, SIGTERM and secrets, with the service as a real process."""

from __future__ import annotations

import httpx

from service.dev.events import contact, event, produce
from service.dev.sandbox.client import sandbox_post, stored_records
from service.dev.topics import Topics
from tests.conftest import TOKEN
from tests.support.kafka import Collector, committed_offsets
from tests.support.waiting import throughout, until
from tests.system.conftest import TOKEN_B


def contacts(first: int, count: int) -> list[tuple[bytes, dict[str, object]]]:
    return [
        (f"c-{n}".encode(), event(f"c-{n}", contact(n, ContactNotes=f"c-{n}")))
        for n in range(first, first + count)
    ]


def invoices(first: int, count: int) -> list[tuple[bytes, dict[str, object]]]:
    return [
        (b"acct", event(f"i-{n}", {"InvoiceNo": f"i-{n}"}, type="ar_invoice.create"))
        for n in range(first, first + count)
    ]


async def health(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=2) as client:
        return await client.get(f"http://127.0.0.1:{port}{path}")


async def test_connector_outage_waits_instead_of_dead_lettering(
    replicas, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    service = replicas(
        SAGEBRIDGE_BREAKER_COOLDOWN_MS="200",
        SAGEBRIDGE_MAX_ATTEMPTS="3",
        SAGEBRIDGE_MAX_IN_FLIGHT="200",
    )
    await service.wait_ready()
    await produce(kafka_bootstrap, topics.events, contacts(0, 200) + invoices(0, 20))
    await collector.wait_for(topics.replies, 220)

    await sandbox_post(sandbox, "/_sandbox/faults", {"down": True})
    await produce(kafka_bootstrap, topics.events, contacts(200, 500) + invoices(20, 50))

    async def breaker_open() -> bool:
        metrics = (await health(service.port, "/metrics")).text
        return 'sagebridge_breaker_open{company="ACME",customer="1001"} 1.0' in metrics

    await until(breaker_open, 30, "the breaker to open")

    async def fetching_paused() -> bool:
        metrics = (await health(service.port, "/metrics")).text
        return "sagebridge_fetch_paused 1.0" in metrics

    # Bounded memory: 550 events wait, but no more than 1.5 x MAX_IN_FLIGHT are taken in.
    await until(fetching_paused, 30, "fetching to pause at the in-flight limit")
    assert _in_flight((await health(service.port, "/metrics")).text) <= 300
    ready = await health(service.port, "/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["connector"] is False

    async def still_no_dead_letters() -> bool:
        return not collector.messages[topics.dlt]

    # The outage lasts 20 s, many times MAX_ATTEMPTS x backoff: nothing may be dead-lettered.
    await throughout(still_no_dead_letters, 20, "no dead letters during the outage")
    await sandbox_post(sandbox, "/_sandbox/faults", {"down": False})

    replies = await collector.wait_for_events(
        topics.replies,
        {f"c-{n}" for n in range(700)} | {f"i-{n}" for n in range(70)},
        timeout_s=120,
    )
    assert all(r.json()["response"] == "SUCCESS" for r in replies)
    assert collector.messages[topics.dlt] == []
    assert len(await stored_records(sandbox, "/customerContacts")) == 700
    await until(service.ready, 30, "readiness to come back")


async def test_sigterm_mid_batch_answers_commits_and_exits_zero(
    replicas, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    # Long batch wait: when SIGTERM arrives, records sit in an open batch.
    service = replicas(SAGEBRIDGE_BATCH_WAIT_MS="30000", SAGEBRIDGE_BATCH_MAX="1000")
    await service.wait_ready()
    await produce(kafka_bootstrap, topics.events, contacts(0, 300))

    async def consumed() -> bool:
        metrics = (await health(service.port, "/metrics")).text
        return _in_flight(metrics) >= 300

    await until(consumed, 30, "all 300 records to be consumed into the open batch")
    assert not collector.messages[topics.replies], "the batch must still be open"
    assert service.terminate(timeout_s=10) == 0
    replies = await collector.wait_for(topics.replies, 300, timeout_s=10)
    assert all(r.json()["response"] == "SUCCESS" for r in replies)

    # Committed: a new instance in the same group finds nothing to redo.
    successor = replicas()
    await successor.wait_ready()
    await produce(kafka_bootstrap, topics.events, contacts(300, 1))
    await collector.wait_for_events(topics.replies, {"c-300"}, timeout_s=30)
    assert len(collector.messages[topics.replies]) == 301


async def test_a_replica_that_starts_and_stops_leaves_the_committed_offsets_alone(
    replicas, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    # Only the deployment's first replica may mark where the group begins (the trace a later
    # replica reads to tell a fresh Redis from an emptied one). A replica joining a running
    # deployment that did the same would take every partition it is given back to the start
    # of its log: a partition then idle would be replayed whole by its next owner.
    first = replicas()
    await first.wait_ready()
    await produce(kafka_bootstrap, topics.events, contacts(0, 300))
    await collector.wait_for(topics.replies, 300, timeout_s=30)
    assert first.terminate(timeout_s=10) == 0
    answered = await committed_offsets(kafka_bootstrap, topics)
    assert sum(answered) == 300, answered  # each of the 6 partitions committed to its end

    idle = replicas()  # every record answered: it takes nothing in, so it commits nothing
    await idle.wait_ready()  # ready only once its partitions were taken on
    assert idle.terminate(timeout_s=10) == 0
    assert await committed_offsets(kafka_bootstrap, topics) == answered

    successor = replicas()
    await successor.wait_ready()
    await produce(kafka_bootstrap, topics.events, contacts(300, 1))
    await collector.wait_for_events(topics.replies, {"c-300"}, timeout_s=30)
    assert len(collector.messages[topics.replies]) == 301


def _in_flight(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith("sagebridge_in_flight "):
            return float(line.split()[1])
    return 0.0


async def test_tokens_never_reach_the_logs(
    replicas, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    service = replicas(SAGEBRIDGE_LOG_LEVEL="DEBUG")
    await service.wait_ready()
    await sandbox_post(sandbox, "/_sandbox/faults", {"fail_rate": 0.3})
    await produce(
        kafka_bootstrap,
        topics.events,
        contacts(0, 100)
        + invoices(0, 10)
        + [
            (b"bad", event("bad-1", contact(1, ContactName="x" * 40))),
            (b"who", event("who-1", contact(1), tenant={"customer": "9", "company": "Z"})),
        ],
    )
    await collector.wait_for(topics.replies, 112, timeout_s=60)
    await (await health(service.port, "/metrics")).aread()
    assert service.terminate() == 0
    log = service.log_path.read_bytes()
    assert b"event delivered" in log and b"event failed" in log, "the log was captured"
    assert TOKEN.encode() not in log and TOKEN_B.encode() not in log
    for reply in collector.messages[topics.replies] + collector.messages[topics.dlt]:
        assert TOKEN.encode() not in (reply.value or b"")
        assert all(TOKEN.encode() not in v for v in reply.headers.values())
