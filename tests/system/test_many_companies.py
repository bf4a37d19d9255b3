"""Many companies on one replica: each company's one-at-a-time call runs beside the others',
however many companies the tenants file lists (more than the Connector client's shared pool)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.connector.client import SHARED_CONNECTIONS
from service.dev.events import event, produce, tenant
from service.dev.replicas import start_service, write_tenants_file
from service.dev.sandbox import SandboxOptions, SandboxThread
from service.dev.sandbox.client import stats as sandbox_stats
from service.dev.topics import Topics
from tests.conftest import COMPANY, CUSTOMER, TOKEN
from tests.support.kafka import Collector

COMPANIES = SHARED_CONNECTIONS + 6
"""Past the pool's shared room: before each company had a connection of its own, at most
that many companies could be inside a call at once."""
LATENCY_MS = 2_000
"""Long enough that every company's call is still running when the last one starts."""


def company(n: int) -> tuple[str, str, str]:
    """(customer, company, token) of company ``n``."""
    return f"{8000 + n}", f"MANY{n:03d}", f"test-token-many-{n:03d}-5b1f"


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    """Every company's token bound to it; calls answered after :data:`LATENCY_MS`."""
    tokens = [f"{TOKEN}={CUSTOMER}/{COMPANY}"]
    tokens += [f"{tok}={cust}/{comp}" for cust, comp, tok in map(company, range(COMPANIES))]
    options = SandboxOptions(port=0, tokens=tuple(tokens), latency_ms=LATENCY_MS)
    with SandboxThread(options) as running:
        yield running


async def test_every_company_is_in_a_call_at_once(
    service_env: dict[str, str],
    tmp_path: Path,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    sandbox: SandboxThread,
) -> None:
    entries = [
        {"customer": cust, "company": comp, "token_env": f"TEST_TOKEN_{comp}"}
        for cust, comp, _ in map(company, range(COMPANIES))
    ]
    env = {
        **service_env,
        "SAGEBRIDGE_TENANTS_FILE": str(write_tenants_file(tmp_path / "tenants.yaml", *entries)),
        "SAGEBRIDGE_HTTP_TIMEOUT_S": "10",
        "SAGEBRIDGE_LOCK_TTL_MS": "20000",
        **{f"TEST_TOKEN_{comp}": tok for _, comp, tok in map(company, range(COMPANIES))},
    }
    invoices = [
        (
            f"inv-{n}".encode(),
            event(
                f"inv-{n}",
                {"InvoiceNo": f"INV{n:05d}", "Amount": n},
                type="ar_invoice.create",
                tenant=tenant(cust, comp),
            ),
        )
        for n, (cust, comp, _) in enumerate(map(company, range(COMPANIES)))
    ]
    await produce(kafka_bootstrap, topics.events, invoices)  # all there at the first poll
    service = start_service(env, tmp_path / "service.log")
    try:
        await service.wait_ready()
        replies = await collector.wait_for(topics.replies, COMPANIES, timeout_s=120)
    finally:
        service.stop()
    assert [r.json()["response"] for r in replies] == ["SUCCESS"] * COMPANIES
    stats = await sandbox_stats(sandbox)
    assert stats["violations"] == 0
    assert stats["max_parallel_tenants"] == COMPANIES
