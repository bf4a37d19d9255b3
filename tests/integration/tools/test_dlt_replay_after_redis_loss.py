"""What ``dlt replay`` replayed survives a Redis that lost its data: it is kept in Kafka.

Letters are replayed and delivered; then Redis loses everything under the deployment's prefix
(its ledger, the replay claims) and the same replay runs again. It must replay nothing: with
the ledger gone too, a second copy would reach the Connector as if new.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.dev.devstack import forget_keys
from service.dev.events import contact, event, produce
from service.dev.sandbox import SandboxOptions, SandboxThread
from service.dev.sandbox.client import sandbox_get, stored_records
from service.dev.topics import Topics
from tests.conftest import TOKEN
from tests.support.cli import sagebridge
from tests.support.kafka import Collector, committed
from tests.support.waiting import until

BETA = {"customer": "2002", "company": "BETA"}
BETA_TOKEN = "beta-token-c41e07"


@pytest.fixture
def event_partitions() -> int:
    return 1  # one order for every event: a reply to a later one comes after earlier ones


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    tokens = (TOKEN, f"{BETA_TOKEN}={BETA['customer']}/{BETA['company']}")
    with SandboxThread(SandboxOptions(port=0, tokens=tokens)) as running:
        yield running


async def test_a_replay_after_redis_lost_its_data_sends_nothing_twice(
    running_service,
    service_env: dict[str, str],
    kafka_bootstrap: str,
    redis_url: str,
    redis_prefix: str,
    topics: Topics,
    collector: Collector,
    sandbox: SandboxThread,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running_service():  # BETA not configured yet: both refused, dead-lettered
        await produce(
            kafka_bootstrap,
            topics.events,
            [(f"beta-{n}".encode(), event(f"beta-{n}", contact(n), tenant=BETA)) for n in (1, 2)],
        )
        await collector.wait_for(topics.dlt, 2)

    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(
        "tenants:\n  - {customer: '2002', company: BETA, token_env: BETA_SAGE_TOKEN}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("BETA_SAGE_TOKEN", BETA_TOKEN)
    async with running_service(tenants_file=tenants):
        first = await sagebridge(service_env, "dlt", "replay")
        assert first.out.splitlines()[-1] == "replayed 2 dead letter(s)"
        await collector.wait_for(topics.replies, 4)

        async def replayed_events_committed() -> bool:
            return await committed(kafka_bootstrap, topics) == 4  # 2 refused, 2 replayed

        # Else a slow drain could leave them to the next run, which would consume them anew.
        await until(replayed_events_committed, 30, "the replayed events' offsets committed")

    await forget_keys(redis_url, redis_prefix)  # Redis lost the deployment's data

    async with running_service(tenants_file=tenants):
        again = await sagebridge(service_env, "dlt", "replay")
        assert again.out.splitlines()[-1] == "replayed 0 dead letter(s)"
        # A new event after any replay there might have been: its reply comes last.
        await produce(
            kafka_bootstrap, topics.events, [(b"beta-3", event("beta-3", contact(3), tenant=BETA))]
        )
        replies = await collector.wait_for(topics.replies, 5)

    assert [r.json()["event_id"] for r in replies[4:]] == ["beta-3"]
    assert len(replies) == 5, [r.json()["event_id"] for r in replies]
    stored = await stored_records(sandbox, "/customerContacts")
    assert sorted(r["record"]["ContactCode"] for r in stored) == [
        "K0000001",
        "K0000002",
        "K0000003",
    ]
    calls = (await sandbox_get(sandbox, "/_sandbox/calls"))["calls"]
    sent = sum(call["records"] for call in calls if call["endpoint"] == "/customerContacts")
    assert sent == 3, f"no record reached the Connector twice: {calls}"
