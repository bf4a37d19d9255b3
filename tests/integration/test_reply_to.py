"""``reply_to`` rules against the real broker: a refused topic gets nothing at all, the refusal
is an ERROR on the default reply topic with a dead letter, and nothing reaches the Connector.
The allowed topics keep working beside it.

The deployment under test: ``SAGEBRIDGE_REPLY_TOPICS`` allows ``<run>-crm-*``; tenant BETA
(tenants file) may use only its own ``<run>-beta-replies``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from service.answers.sender import TOPICS_TRACKED
from service.dev.events import contact, event, produce
from service.dev.sandbox.client import stats as sandbox_stats
from service.dev.topics import Topics, create_topics
from tests.conftest import TOKEN
from tests.support.kafka import Collector, everything_in
from tests.support.waiting import until

BETA = {"customer": "2002", "company": "BETA"}


@dataclass(frozen=True)
class Deployment:
    crm_replies: str
    """Allowed by the global list."""
    beta_replies: str
    """BETA's own; BETA may use nothing else."""
    outside: str
    """An existing topic in no list."""
    internal: str
    """An existing topic named like Kafka's own."""
    tenants_file: Path


@pytest.fixture
async def deployment(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Deployment:
    run = uuid.uuid4().hex[:8]
    made = Deployment(
        f"{run}-crm-replies",
        f"{run}-beta-replies",
        f"{run}-outside",
        f"__{run}-internal",
        tmp_path / "tenants.yaml",
    )
    await create_topics(
        kafka_bootstrap, [made.crm_replies, made.beta_replies, made.outside, made.internal]
    )
    made.tenants_file.write_text(
        "tenants:\n"
        f"  - {{customer: '{BETA['customer']}', company: {BETA['company']},"
        f" token_env: TEST_TOKEN_BETA, reply_topics: ['{made.beta_replies}']}}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("TEST_TOKEN_BETA", TOKEN)
    return made


REFUSED = {
    "input-topic": ("events", {}, "it is an input topic"),
    "dead-letter-topic": ("dlt", {}, "it is the dead-letter topic"),
    "kafka-internal": ("internal", {}, "topics starting with '__' are Kafka's own"),
    "outside-the-global-list": ("outside", {}, "not among SAGEBRIDGE_REPLY_TOPICS"),
    "another-companys-reply-topic": (
        "crm_replies",
        {"tenant": BETA},
        "not among the reply_topics of tenant 2002/BETA",
    ),
}


@pytest.mark.parametrize("kind", list(REFUSED))
async def test_a_refused_reply_to_gets_nothing_and_the_refusal_goes_to_the_default_topic(
    kind: str,
    running_service,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    sandbox,
    deployment: Deployment,
) -> None:
    where, extra, reason = REFUSED[kind]
    named = getattr(topics, where, None) or getattr(deployment, where)
    bad = event(f"bad-{kind}", contact(1), reply_to=named, **extra)
    allowed = event("allowed-a", contact(2), reply_to=deployment.crm_replies)
    allowed_beta = event("allowed-b", contact(3), reply_to=deployment.beta_replies, tenant=BETA)
    mine = await Collector(
        kafka_bootstrap, [deployment.crm_replies, deployment.beta_replies]
    ).start()
    try:
        async with running_service(
            reply_topics=f"{deployment.crm_replies.split('-crm-')[0]}-crm-*",
            tenants_file=deployment.tenants_file,
        ):
            await produce(
                kafka_bootstrap,
                topics.events,
                [(b"bad", bad), (b"allowed-a", allowed), (b"allowed-b", allowed_beta)],
            )
            [error] = await collector.wait_for_keys(topics.replies, {b"bad"})
            [dead] = await collector.wait_for_keys(topics.dlt, {b"bad"})
            await mine.wait_for_keys(deployment.crm_replies, {b"allowed-a"})
            await mine.wait_for_keys(deployment.beta_replies, {b"allowed-b"})
    finally:
        await mine.stop()

    body = error.json()
    assert body["response"] == "ERROR" and body["stage"] == "route"
    assert body["message"] == f"reply_to: topic {named!r} is not allowed: {reason}"
    assert dead.headers["x-error-stage"] == b"route" and dead.value is not None
    # The named topic got nothing for the refused event: it holds exactly what belongs there.
    belongs = {
        topics.events: [b"allowed-a", b"allowed-b", b"bad"],  # the events produced
        topics.dlt: [b"bad"],  # the refusal's dead letter
        deployment.crm_replies: [b"allowed-a"],  # the allowed reply
    }
    held = await everything_in(kafka_bootstrap, named)
    assert sorted(r.key or b"" for r in held) == belongs.get(named, [])
    if named == topics.dlt:
        assert held[0].value == dead.value and held[0].headers["x-error-stage"] == b"route"
    assert (await sandbox_stats(sandbox))["records"] == 2, "only the two allowed events were sent"


async def test_a_tenant_named_without_being_known_is_answered_on_the_default_topic(
    running_service,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    sandbox,
    deployment: Deployment,
) -> None:
    """Without a known tenant there is no list to judge ``reply_to`` by: a refusal for an
    unknown tenant or a broken envelope goes to the default topic, not the named one."""
    stranger = event("stranger", contact(1), reply_to=deployment.crm_replies)
    stranger["tenant"] = {"customer": "666", "company": "EVIL"}
    broken = event("broken", contact(2), reply_to=deployment.crm_replies, correlation_id="")
    async with running_service(tenants_file=deployment.tenants_file):
        await produce(
            kafka_bootstrap, topics.events, [(b"stranger", stranger), (b"broken", broken)]
        )
        replies = await collector.wait_for_keys(topics.replies, {b"stranger", b"broken"})
    stages = {r.key: r.json()["stage"] for r in replies}
    assert stages == {b"stranger": "route", b"broken": "parse"}
    assert await everything_in(kafka_bootstrap, deployment.crm_replies) == []


async def test_replies_to_many_topics_leave_bounded_state_behind(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector
) -> None:
    """Each topic an event names used to leave producer metadata and a batch behind for good.
    Replies to more topics than the sender tracks (10 each, enough for a batch of their own)
    leave metadata for at most the tracked number, and no batch once acknowledged."""
    run = uuid.uuid4().hex[:8]
    many = [f"{run}-reply-{n:03d}" for n in range(TOPICS_TRACKED + 32)]
    await create_topics(kafka_bootstrap, many)
    refused = contact(0, ContactName="x" * 31)  # answered at once, no Connector call
    messages: list[tuple[bytes | None, bytes | dict[str, Any] | None]] = [
        (topic.encode(), event(f"{topic}-{n}", refused, reply_to=topic))
        for topic in many
        for n in range(10)
    ]
    readers = await Collector(kafka_bootstrap, many).start()
    try:
        async with running_service() as bridge:
            await produce(kafka_bootstrap, topics.events, messages)
            for topic in many:
                await readers.wait_for(topic, 10)
            await collector.wait_for(topics.dlt, len(messages))
            cluster, sender = bridge.producer.client.cluster, bridge.publisher.sender

            async def metadata_bounded() -> bool:
                # the tracked topics and the two pinned ones (replies, dead letters)
                return len(cluster.topics()) <= TOPICS_TRACKED + 2

            async def batches_forgotten() -> bool:
                return sender.partitions_holding_batches == 0

            await until(metadata_bounded, 10, "metadata for the tracked topics only")
            await until(batches_forgotten, 10, "acknowledged batches to be forgotten")
    finally:
        await readers.stop()
