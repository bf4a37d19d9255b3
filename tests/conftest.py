"""The real stack for tests: a Kafka-protocol broker (Tansu, or SAGEBRIDGE_TEST_KAFKA), the
machine's Redis, the sandbox over HTTP, and the service — each test with its own topics, group,
Redis key prefix and sandbox."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from service.dev.devstack import redis_reachable
from service.dev.replicas import service_env as service_settings
from service.dev.sandbox import SandboxOptions, SandboxThread
from service.dev.topics import Topics
from tests.support.broker import broker_for_tests
from tests.support.kafka import Collector
from tests.support.nowhere import port_nobody_listens_on

TOKEN = "test-token-3f9a1c"  # a distinctive string, so leak checks can grep for it
CUSTOMER, COMPANY = "1001", "ACME"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with broker_for_tests() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("SAGEBRIDGE_TEST_REDIS", "redis://127.0.0.1:6379/0")
    assert redis_reachable(url), f"tests need Redis at {url} (.ci/run starts one)"
    return url


@pytest.fixture
def nowhere() -> Iterator[str]:
    """``127.0.0.1:<port>`` where nothing listens during the test: connecting is refused."""
    with port_nobody_listens_on() as port:
        yield f"127.0.0.1:{port}"


@pytest.fixture
def redis_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the tests' Redis, to look at what the service left there."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    with SandboxThread(SandboxOptions(port=0, tokens=(TOKEN,))) as running:
        yield running


@pytest.fixture
def event_partitions() -> int:
    return 3


@pytest.fixture
async def topics(kafka_bootstrap: str, event_partitions: int) -> Topics:
    fresh = Topics.fresh()
    await fresh.create(kafka_bootstrap, event_partitions)
    return fresh


@pytest.fixture
async def collector(kafka_bootstrap: str, topics: Topics) -> AsyncIterator[Collector]:
    running = await Collector(kafka_bootstrap, [topics.replies, topics.dlt]).start()
    yield running
    await running.stop()


@pytest.fixture
def service_env(
    kafka_bootstrap: str, redis_url: str, redis_prefix: str, topics: Topics, sandbox: SandboxThread
) -> dict[str, str]:
    """Settings for a service under test, as environment variables (for subprocesses too)."""
    settings = service_settings(
        bootstrap=kafka_bootstrap,
        topics=topics,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        connector_url=sandbox.url,
        token=TOKEN,
        customer=CUSTOMER,
        company=COMPANY,
    )
    return {
        **settings,
        "SAGEBRIDGE_HTTP_PORT": "0",
        "SAGEBRIDGE_RETRY_BACKOFF_MS": "20",
        "SAGEBRIDGE_SETTLE_AFTER_UNKNOWN_S": "1",
    }


ServiceFactory = Callable[..., Any]


@pytest.fixture
def running_service(service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> ServiceFactory:
    """``async with running_service(**overrides) as bridge:`` — the service in this process
    (``tracing=`` a :class:`~service.ops.traces.Tracing` instead of the ``OTEL_*`` one)."""
    from service.app import create_app
    from service.config import load_settings
    from service.tenants import TenantDirectory

    @asynccontextmanager
    async def start(*, tracing: Any = None, **overrides: Any) -> AsyncIterator[Any]:
        for name, value in service_env.items():
            monkeypatch.setenv(name, value)
        settings = load_settings(**overrides)
        app, bridge = create_app(settings, TenantDirectory.from_settings(settings), tracing=tracing)
        await app.start()
        try:
            yield bridge
        finally:
            await app.stop()

    return start


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No SAGEBRIDGE_* from the outer environment and no stray ``.env`` in the working dir:
    for tests of how settings are read."""
    for name in list(os.environ):
        if name.upper().startswith("SAGEBRIDGE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
