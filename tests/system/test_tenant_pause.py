"""``sagebridge tenant pause | resume | status`` with replicas as real processes: the paused
company gets no call while paused, on every replica, and across a restart; the other tenant
flows; everything arrives once resumed, without retries or dead letters."""

from __future__ import annotations

import asyncio
import os
import sys

import httpx

from service.dev.events import contact, event, produce, tenant
from service.dev.processes import REPO
from service.dev.replicas import ServiceProcess
from service.dev.sandbox.client import sandbox_get
from service.dev.topics import Topics
from tests.support.kafka import Collector
from tests.support.waiting import throughout, until
from tests.system.conftest import COMPANY_B, CUSTOMER_B

BETA = tenant(CUSTOMER_B, COMPANY_B)
PAUSED_GAUGE = f'sagebridge_tenant_paused{{company="{COMPANY_B}",customer="{CUSTOMER_B}"}} 1.0'


async def cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    """``python -m service tenant ...`` as an operator runs it; exit code and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        "tenant",
        *args,
        cwd=REPO,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()


def mixed(first: int, count: int) -> list[tuple[bytes, dict[str, object]]]:
    """For each tenant: contacts (batch lane) and invoices (serial lane)."""
    messages: list[tuple[bytes, dict[str, object]]] = []
    for n in range(first, first + count):
        for name, extra in (("acme", {}), ("beta", {"tenant": BETA})):
            messages.append((f"{name}-c{n}".encode(), event(f"{name}-c{n}", contact(n), **extra)))
            invoice = {"InvoiceNo": f"{name}-i{n}"}
            messages.append(
                (
                    f"{name}-acct".encode(),
                    event(f"{name}-i{n}", invoice, type="ar_invoice.create", **extra),
                )
            )
    return messages


def ids(name: str, first: int, count: int) -> set[str]:
    return {f"{name}-{kind}{n}" for n in range(first, first + count) for kind in ("c", "i")}


async def metrics(service: ServiceProcess) -> str:
    async with httpx.AsyncClient(timeout=2) as client:
        return (await client.get(f"http://127.0.0.1:{service.port}/metrics")).text


async def beta_calls(sandbox) -> int:
    calls = (await sandbox_get(sandbox, "/_sandbox/calls"))["calls"]
    return sum(1 for call in calls if call["company"] == COMPANY_B)


async def test_a_paused_tenant_waits_on_every_replica_while_the_other_flows(
    replicas, replica_env, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    first, second = replicas(), replicas()
    await first.wait_ready()
    await second.wait_ready()

    code, output = await cli(replica_env, "pause", f"{CUSTOMER_B}/{COMPANY_B}")
    assert code == 0 and f"paused {CUSTOMER_B}/{COMPANY_B}" in output, output
    for service in (first, second):

        async def shows_pause(service: ServiceProcess = service) -> bool:
            return PAUSED_GAUGE in await metrics(service)

        await until(shows_pause, 5, "every replica to see the pause")

    await produce(kafka_bootstrap, topics.events, mixed(0, 40))
    await collector.wait_for_events(topics.replies, ids("acme", 0, 40), timeout_s=60)

    async def beta_untouched() -> bool:
        replied = {r.json()["event_id"] for r in collector.messages[topics.replies]}
        return await beta_calls(sandbox) == 0 and not replied & ids("beta", 0, 40)

    await throughout(beta_untouched, 3, "no call and no answer for the paused tenant")
    code, output = await cli(replica_env, "status")
    assert code == 0 and f"{CUSTOMER_B}/{COMPANY_B} paused since" in output, output
    for service in (first, second):
        assert await service.ready(), "a pause is intended: the replica stays ready"

    code, output = await cli(replica_env, "resume", f"{CUSTOMER_B}/{COMPANY_B}")
    assert code == 0 and f"resumed {CUSTOMER_B}/{COMPANY_B}" in output, output
    replies = await collector.wait_for_events(topics.replies, ids("beta", 0, 40), timeout_s=60)
    assert all(r.json()["response"] == "SUCCESS" for r in replies)
    assert all(r.json()["attempts"] == 1 for r in replies), "waiting used no retries"
    assert collector.messages[topics.dlt] == []
    assert await beta_calls(sandbox) > 0
    assert (await cli(replica_env, "status"))[1].strip() == "no tenant is paused"


async def test_a_pause_outlives_a_restart_until_resumed(
    replicas, replica_env, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    code, output = await cli(replica_env, "pause", f"{CUSTOMER_B}/{COMPANY_B}")
    assert code == 0, output
    before = replicas(SAGEBRIDGE_DRAIN_TIMEOUT_S="1")
    await before.wait_ready()
    await produce(kafka_bootstrap, topics.events, mixed(0, 10))
    await collector.wait_for_events(topics.replies, ids("acme", 0, 10), timeout_s=60)
    before.stop()

    after = replicas()
    await after.wait_ready()
    assert PAUSED_GAUGE in await metrics(after)
    await produce(kafka_bootstrap, topics.events, mixed(10, 5))
    await collector.wait_for_events(topics.replies, ids("acme", 10, 5), timeout_s=60)

    async def no_beta_call() -> bool:
        return await beta_calls(sandbox) == 0

    await throughout(no_beta_call, 2, "no call for the paused tenant after the restart")
    code, output = await cli(replica_env, "resume", f"{CUSTOMER_B}/{COMPANY_B}")
    assert code == 0, output
    await collector.wait_for_events(topics.replies, ids("beta", 0, 15), timeout_s=60)
    assert collector.messages[topics.dlt] == []


async def test_the_commands_refuse_what_they_cannot_do(replica_env) -> None:
    code, output = await cli(replica_env, "pause", "9999/NOWHERE")
    assert code == 2 and "9999/NOWHERE is not a configured tenant" in output, output
    code, output = await cli(replica_env, "pause", "ACME")
    assert code == 2 and "CUSTOMER/COMPANY" in output, output
    unreachable = {**replica_env, "SAGEBRIDGE_REDIS_URL": "redis://127.0.0.1:1/0"}
    code, output = await cli(unreachable, "status")
    assert code == 2 and output.count("\n") == 1 and "Redis unreachable" in output, output
