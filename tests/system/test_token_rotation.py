"""Tokens that rotate without a restart, with the service as a real process: a tenant's token
comes from a mounted Secret (``token_file``); a refused token opens that tenant's breaker
instead of dead-lettering, a rotated one is picked up mid-run, and nothing is lost or leaked."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.dev.events import contact, event, produce, tenant
from service.dev.replicas import write_tenants_file
from service.dev.sandbox import SandboxOptions, SandboxThread
from service.dev.sandbox.client import sandbox_get
from service.dev.topics import Topics
from tests.conftest import COMPANY, CUSTOMER, TOKEN
from tests.support.kafka import Collector
from tests.support.waiting import throughout, until
from tests.system.conftest import COMPANY_B, CUSTOMER_B

REVOKED = "beta-revoked-token-3e81c2"
CURRENT = "beta-current-token-7a0d55"
NEXT = "beta-next-token-c29f14"
BETA = tenant(CUSTOMER_B, COMPANY_B)
BREAKER_OPEN = f'sagebridge_breaker_open{{company="{COMPANY_B}",customer="{CUSTOMER_B}"}} 1.0'


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    """BETA's current and next tokens are accepted, its revoked one is not (HTTP 401)."""
    tokens = (
        f"{TOKEN}={CUSTOMER}/{COMPANY}",
        f"{CURRENT}={CUSTOMER_B}/{COMPANY_B}",
        f"{NEXT}={CUSTOMER_B}/{COMPANY_B}",
    )
    with SandboxThread(SandboxOptions(port=0, tokens=tokens, latency_ms=5)) as running:
        yield running


def mount(volume: Path, token: str, version: str) -> None:
    """Update a Secret volume as the kubelet does: new directory, ``..data`` swapped to it."""
    fresh = volume / f"..{version}"
    fresh.mkdir()
    (fresh / "beta").write_text(token)
    link = volume / "..data_tmp"
    link.symlink_to(fresh.name)
    os.replace(link, volume / "..data")
    if not (volume / "beta").is_symlink():
        (volume / "beta").symlink_to("..data/beta")


def events(name: str, first: int, count: int) -> list[tuple[bytes, dict[str, object]]]:
    out: list[tuple[bytes, dict[str, object]]] = []
    for n in range(first, first + count):
        out.append((f"{name}-c{n}".encode(), event(f"{name}-c{n}", contact(n), tenant=BETA)))
        invoice = event(f"{name}-i{n}", {"InvoiceNo": f"{name}-{n}"}, type="ar_invoice.create")
        out.append((b"beta-acct", {**invoice, "tenant": BETA}))
    return out


def ids(name: str, first: int, count: int) -> set[str]:
    return {f"{name}-{kind}{n}" for n in range(first, first + count) for kind in ("c", "i")}


async def metrics(port: int) -> str:
    async with httpx.AsyncClient(timeout=2) as client:
        return (await client.get(f"http://127.0.0.1:{port}/metrics")).text


async def test_a_refused_token_waits_for_its_rotation_and_nothing_is_lost(
    replicas, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox, tmp_path: Path
) -> None:
    volume = tmp_path / "tokens"
    volume.mkdir()
    mount(volume, REVOKED, "v1")
    entry = {"customer": CUSTOMER_B, "company": COMPANY_B, "token_file": str(volume / "beta")}
    tenants = write_tenants_file(tmp_path / "rotating.yaml", entry)
    service = replicas(
        SAGEBRIDGE_TENANTS_FILE=str(tenants),
        SAGEBRIDGE_BREAKER_COOLDOWN_MS="200",
        SAGEBRIDGE_MAX_ATTEMPTS="2",
    )
    await service.wait_ready()
    await produce(kafka_bootstrap, topics.events, events("a", 0, 20))

    async def breaker_open() -> bool:
        return BREAKER_OPEN in await metrics(service.port)

    await until(breaker_open, 30, "the refused token to open BETA's breaker")

    async def nothing_answered() -> bool:
        return not collector.messages[topics.dlt] and not collector.messages[topics.replies]

    # Many times MAX_ATTEMPTS x backoff: a refused token must not use up the records' retries.
    await throughout(nothing_answered, 5, "no reply and no dead letter while the token is refused")

    mount(volume, CURRENT, "v2")  # the Secret is updated; the pod is not restarted
    replies = await collector.wait_for_events(topics.replies, ids("a", 0, 20), timeout_s=90)
    assert all(r.json()["response"] == "SUCCESS" for r in replies)

    # Rotated again mid-run, this time in place, while records flow.
    await produce(kafka_bootstrap, topics.events, events("b", 0, 30))
    (volume / "..v2" / "beta").write_text(NEXT)
    sent = 0

    async def reread_twice() -> bool:  # the file is looked at on the way to a call
        nonlocal sent
        await produce(kafka_bootstrap, topics.events, events("d", sent, 1))
        sent += 1
        return service.log_path.read_text().count("token re-read from its file") >= 2

    await until(reread_twice, 30, "the rewritten token file to be read again")
    await produce(kafka_bootstrap, topics.events, events("c", 0, 30))
    replies = await collector.wait_for_events(
        topics.replies, ids("b", 0, 30) | ids("c", 0, 30) | ids("d", 0, sent), timeout_s=90
    )
    assert all(r.json()["response"] == "SUCCESS" for r in replies)
    assert collector.messages[topics.dlt] == []

    calls = (await sandbox_get(sandbox, "/_sandbox/calls"))["calls"]
    labels = [call["token"] for call in calls if call["company"] == COMPANY_B]
    assert labels[-1] == "token#3", "the calls after the re-read carry the token written last"

    assert service.terminate() == 0
    log = service.log_path.read_text()
    assert "refused this tenant's token (HTTP 401)" in log
    for secret in (REVOKED, CURRENT, NEXT):
        assert secret not in log
        for message in collector.messages[topics.replies] + collector.messages[topics.dlt]:
            assert secret.encode() not in (message.value or b"")
