"""Several ``sagebridge run`` processes against one broker, Redis and sandbox; two tenants."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service.dev.replicas import ServiceProcess, start_service, write_tenants_file
from service.dev.sandbox import SandboxOptions, SandboxThread
from tests.conftest import COMPANY, CUSTOMER, TOKEN
from tests.support.broker import broker_for_tests

TOKEN_B = "test-token-b-77d2e0"
CUSTOMER_B, COMPANY_B = "2002", "BETA"


@pytest.fixture
def event_partitions() -> int:
    return 6


@pytest.fixture(scope="module")
def kafka_bootstrap() -> Iterator[str]:
    """A broker of its own per module: these tests kill and restart consumers many times, and
    a broker that already carries the whole integration suite's groups makes their timing
    depend on test order. (``SAGEBRIDGE_TEST_KAFKA`` still wins when set.)"""
    with broker_for_tests() as bootstrap:
        yield bootstrap


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    """Tokens bound to their tenant: a call with the wrong tenant's token is refused."""
    tokens = (f"{TOKEN}={CUSTOMER}/{COMPANY}", f"{TOKEN_B}={CUSTOMER_B}/{COMPANY_B}")
    with SandboxThread(SandboxOptions(port=0, tokens=tokens, latency_ms=20)) as running:
        yield running


@pytest.fixture
def replica_env(service_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    beta = {"customer": CUSTOMER_B, "company": COMPANY_B, "token_env": "TEST_TOKEN_B"}
    tenants = write_tenants_file(tmp_path / "tenants.yaml", beta)
    return {
        **service_env,
        "SAGEBRIDGE_TENANTS_FILE": str(tenants),
        "TEST_TOKEN_B": TOKEN_B,
        # Short enough that a dead holder frees a tenant soon; room for event-loop lag on a
        # loaded 2-core machine between the lease check and the call (lease >= timeout + 1 s).
        "SAGEBRIDGE_LOCK_TTL_MS": "6000",
        "SAGEBRIDGE_HTTP_TIMEOUT_S": "3",
        "SAGEBRIDGE_LOG_LEVEL": "INFO",
    }


@pytest.fixture
def replicas(
    replica_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., ServiceProcess]]:
    started: list[ServiceProcess] = []

    def start(**env: str) -> ServiceProcess:
        process = start_service({**replica_env, **env}, tmp_path / f"service-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
