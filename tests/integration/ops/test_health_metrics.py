"""/healthz, /readyz and /metrics over real HTTP from a service running in this process.

Readiness is what Kubernetes routes and rolls by, so each of its inputs is driven for real: the
consumer group's assignment (the bridge serves health before the broker starts), and Redis (a
private redis-server, frozen with SIGSTOP so it accepts connections but never answers). The
server faces whatever can reach the pod, so what a client can hold is bounded: a slow client is
cut off, and connections past the limit are answered 503.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from service.dev.devstack import start_redis
from service.dev.events import contact, event, produce
from service.dev.processes import Process
from service.dev.sandbox.client import sandbox_post
from service.dev.topics import Topics
from service.ops.http_server import HEADER_TIMEOUT_S, MAX_CONNECTIONS
from tests.conftest import TOKEN
from tests.support.kafka import Collector
from tests.support.waiting import until


async def get(bridge: Any, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(f"http://127.0.0.1:{bridge.http.port}{path}")


async def readiness(bridge: Any) -> tuple[int, dict[str, Any]]:
    response = await get(bridge, "/readyz")
    assert TOKEN not in response.text
    return response.status_code, response.json()


async def is_ready(bridge: Any) -> bool:
    status, _ = await readiness(bridge)
    return status == 200


async def is_not_ready(bridge: Any) -> bool:
    return not await is_ready(bridge)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition, keyed by (name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 when there are none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in metrics.items() if n == name and wanted <= ls)


async def scrape(bridge: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await get(bridge, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert TOKEN not in response.text, "a token leaked into /metrics"
    return samples(response.text)


@pytest.fixture
def private_redis() -> Iterator[Process]:
    process = start_redis()
    try:
        yield process
    finally:
        if process.popen.poll() is None:
            os.kill(process.popen.pid, signal.SIGCONT)
        process.stop()


@asynccontextmanager
async def frozen(process: Process) -> AsyncIterator[None]:
    os.kill(process.popen.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.popen.pid, signal.SIGCONT)


async def test_not_ready_before_the_group_assigns_then_ready(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, topics: Topics
) -> None:
    """The health server is up before the consumer joins; until it is assigned, /readyz says
    no (503) and names the missing check, while /healthz already says alive."""
    from service.app import create_app
    from service.config import load_settings
    from service.tenants import TenantDirectory

    for name, setting in service_env.items():
        monkeypatch.setenv(name, setting)
    settings = load_settings()
    app, bridge = create_app(settings, TenantDirectory.from_settings(settings))
    assert app.broker is not None
    await bridge.start()  # health server and producer; the consumer is not started yet
    try:
        alive = await get(bridge, "/healthz")
        assert alive.status_code == 200 and alive.json() == {"status": "alive"}
        status, body = await readiness(bridge)
        assert status == 503 and body["ready"] is False
        assert body["checks"]["kafka_assigned"] is False
        assert body["checks"]["redis"] is True, "only the assignment is missing"

        await app.broker.start()  # joins the group
        await until(lambda: is_ready(bridge), 30, "readiness after the group assignment")
        status, body = await readiness(bridge)
        assert body["ready"] is True and all(body["checks"].values())
    finally:
        await bridge.drain()
        await app.broker.stop()
        await bridge.close()


async def test_not_ready_while_redis_is_down(running_service, private_redis: Process) -> None:
    async with running_service(redis_url=f"redis://127.0.0.1:{private_redis.port}/0") as bridge:
        await until(lambda: is_ready(bridge), 30, "readiness with Redis up")
        async with frozen(private_redis):
            await until(lambda: is_not_ready(bridge), 10, "readiness to see Redis down")
            status, body = await readiness(bridge)
            assert status == 503 and body["checks"]["redis"] is False
            assert body["checks"]["kafka_assigned"] is True
            health = await get(bridge, "/healthz")
            assert health.status_code == 200, "a Redis outage must not get the pod killed"
        await until(lambda: is_ready(bridge), 30, "readiness after Redis came back")


async def test_metrics_move_with_traffic(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector
) -> None:
    good = 20
    messages: list[tuple[bytes | None, bytes | dict[str, Any] | None]] = [
        (f"k{n}".encode(), event(f"ok-{n}", contact(n))) for n in range(good)
    ]
    messages.append((b"bad", event("too-long", contact(99, ContactName="x" * 41))))
    messages.append((b"junk", b"not json"))
    async with running_service() as bridge:
        before = await scrape(bridge)
        assert value(before, "sagebridge_events_total") == 0
        assert value(before, "sagebridge_dead_letters_total") == 0

        await produce(kafka_bootstrap, topics.events, messages)
        await collector.wait_for(topics.replies, good + 2)

        async def counted() -> bool:
            return value(await scrape(bridge), "sagebridge_events_total") == good + 2

        await until(counted, 10, "events to be counted")
        after = await scrape(bridge)

    contact_type = {"type": "contact.upsert"}
    assert value(after, "sagebridge_events_total", **contact_type, outcome="SUCCESS") == good
    assert (
        value(after, "sagebridge_events_total", **contact_type, outcome="ERROR", stage="validation")
        == 1
    )
    assert value(after, "sagebridge_events_total", outcome="ERROR", stage="parse") == 1
    assert value(after, "sagebridge_dead_letters_total", stage="validation") == 1
    assert value(after, "sagebridge_dead_letters_total", stage="parse") == 1
    assert value(after, "sagebridge_dead_letters_total") == 2

    # Every good record went out in some batch; the bad ones never reached the Connector.
    assert value(after, "sagebridge_batch_size_sum") == good
    calls = value(after, "sagebridge_batch_size_count")
    assert 1 <= calls <= good
    latency = {"lane": "batch", "endpoint": "/customerContacts"}
    assert value(after, "sagebridge_connector_latency_seconds_count", **latency) == calls
    assert value(after, "sagebridge_connector_latency_seconds_sum", **latency) > 0
    assert value(after, "sagebridge_in_flight") == 0, "everything answered"


async def test_busy_companies_show_while_a_call_runs_and_fall_to_zero_when_idle(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    """What an idle company costs is nothing: the gauge of companies with a serial worker
    shows the one whose invoice is in a (hung) call, and 0 once it is answered."""
    await sandbox_post(sandbox, "/_sandbox/faults", {"hang_rate": 1.0})
    invoice = {"InvoiceNo": "INV000001", "CustomerNo": "ABC", "Amount": 1}
    async with running_service() as bridge:
        assert value(await scrape(bridge), "sagebridge_serial_busy_companies") == 0

        async def busy(count: int) -> bool:
            return value(await scrape(bridge), "sagebridge_serial_busy_companies") == count

        await produce(
            kafka_bootstrap,
            topics.events,
            [(b"k", event("inv-1", invoice, type="ar_invoice.create"))],
        )
        await until(lambda: busy(1), 20, "the company's worker to show while its call hangs")
        await sandbox_post(sandbox, "/_sandbox/faults", {"hang_rate": 0.0})  # releases it
        [reply] = await collector.wait_for(topics.replies, 1)
        await until(lambda: busy(0), 20, "the worker to end once the queue is empty")
    assert reply.json()["endpoint"] == "/accountsReceivable"


@pytest.mark.parametrize("append_only", [True, False], ids=["aof", "no-persistence"])
async def test_a_ledger_redis_that_would_lose_its_data_is_shown_not_durable(
    running_service, tmp_path, append_only: bool
) -> None:
    """The ledger is only as safe as Redis keeps it: /readyz, /metrics and the log say so."""
    redis = start_redis(append_only_dir=tmp_path if append_only else None)
    try:
        async with running_service(redis_url=f"redis://127.0.0.1:{redis.port}/0") as bridge:

            async def reported() -> bool:
                return (await readiness(bridge))[1]["ledger"]["durable"] is not None

            await until(reported, 10, "the ledger's durability to be checked")
            _, body = await readiness(bridge)
            metrics = await scrape(bridge)
    finally:
        redis.stop()
    assert body["ledger"]["appendonly"] == ("yes" if append_only else "no")
    assert body["ledger"]["durable"] is append_only
    assert value(metrics, "sagebridge_ledger_durable") == (1.0 if append_only else 0.0)


async def test_distinct_unknown_types_share_one_series(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector
) -> None:
    """A metric label must not take its value from the event: 2,000 events with 2,000 made-up
    types add a handful of series (counted under ``type="unknown"``), not 2,000."""
    count = 2000
    messages: list[tuple[bytes | None, bytes | dict[str, Any] | None]] = [
        (f"u{n}".encode(), event(f"unknown-{n}", contact(n), type=f"vendor.thing-{n}"))
        for n in range(count)
    ]
    async with running_service() as bridge:
        before = await get(bridge, "/metrics")
        await produce(kafka_bootstrap, topics.events, messages)
        await collector.wait_for(topics.replies, count)

        async def counted() -> bool:
            return value(await scrape(bridge), "sagebridge_events_total") == count

        await until(counted, 30, "events to be counted")
        after = await get(bridge, "/metrics")

    new_series = set(samples(after.text)) - set(samples(before.text))
    assert len(new_series) <= 8, sorted(new_series)[:10]
    unknown = {"type": "unknown", "outcome": "ERROR", "stage": "route"}
    assert value(samples(after.text), "sagebridge_events_total", **unknown) == count
    assert len(after.content) - len(before.content) < 2_000


async def pings(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_ping", {}).get("calls", 0))


async def test_readyz_costs_at_most_about_one_redis_ping_a_second(
    running_service, private_redis: Process
) -> None:
    """However often /readyz is asked, the status behind it is refreshed in the background."""
    async with (
        running_service(redis_url=f"redis://127.0.0.1:{private_redis.port}/0") as bridge,
        Redis(port=private_redis.port) as admin,
    ):
        await until(lambda: is_ready(bridge), 30, "readiness")
        before, started, asked = await pings(admin), time.monotonic(), 0
        async with httpx.AsyncClient(timeout=10) as client:
            url = f"http://127.0.0.1:{bridge.http.port}/readyz"
            while asked < 300 or time.monotonic() - started < 3:
                assert (await client.get(url)).status_code == 200
                asked += 1
        elapsed = time.monotonic() - started
        pinged = await pings(admin) - before
    assert 1 <= pinged <= elapsed + 2, f"{pinged} PINGs for {asked} requests in {elapsed:.1f} s"


async def test_a_client_slow_to_send_its_request_is_cut_off(running_service) -> None:
    async with running_service() as bridge:
        reader, writer = await asyncio.open_connection("127.0.0.1", bridge.http.port)
        writer.write(b"GET /readyz HT")  # half a request line, and then nothing
        await writer.drain()
        started = time.monotonic()
        try:
            rest = await asyncio.wait_for(reader.read(), HEADER_TIMEOUT_S + 10)
        finally:
            writer.close()
        assert rest == b"", "closed without an answer"
        assert time.monotonic() - started >= HEADER_TIMEOUT_S - 1
        assert (await get(bridge, "/healthz")).status_code == 200, "others are still served"


async def test_connections_past_the_limit_are_answered_503(running_service) -> None:
    async with running_service() as bridge:
        idle = [
            await asyncio.open_connection("127.0.0.1", bridge.http.port)
            for _ in range(MAX_CONNECTIONS)
        ]
        try:
            assert (await get(bridge, "/healthz")).status_code == 503
        finally:
            for _, writer in idle:
                writer.close()

        async def served() -> bool:
            return (await get(bridge, "/healthz")).status_code == 200

        await until(served, 10, "the health server to serve again once they closed")


async def test_the_health_server_binds_the_configured_address(running_service) -> None:
    async with (
        running_service(http_host="127.0.0.2") as bridge,
        httpx.AsyncClient(timeout=5) as client,
    ):
        there = await client.get(f"http://127.0.0.2:{bridge.http.port}/healthz")
        assert there.status_code == 200
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{bridge.http.port}/healthz")
