"""Soak: 10,000 hostile events of every kind, mixed with 1,000 good contacts and invoices for two
companies, through one real ``sagebridge run`` process.

Every good event is delivered, every bad one gets one ERROR and one dead letter, the input,
dead-letter and refused ``reply_to`` topics hold nothing the service wrote by mistake, and the
process's peak RSS and its ``/metrics`` page stay within bounds."""

from __future__ import annotations

import itertools
import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from service.dev.events import contact, event, produce
from service.dev.processes import peak_rss_bytes
from service.dev.replicas import ServiceProcess
from service.dev.sandbox.client import sandbox_post, stored_records
from service.dev.sandbox.client import stats as sandbox_stats
from service.dev.topics import Topics, create_topics
from tests.conftest import COMPANY, CUSTOMER
from tests.support.hostile import HOSTILE, MIB
from tests.support.kafka import Collector, Received, everything_in
from tests.system.conftest import COMPANY_B, CUSTOMER_B

BAD, GOOD_CONTACTS, GOOD_INVOICES = 10_000, 800, 200
PEAK_RSS_BYTES = 200 * MIB
"""The service's VmHWM after the soak (one of the events is 10 MiB); the benchmark's goal for
the service's peak RSS is 200 MB too."""
METRICS_BYTES = 32 * 1024
"""The /metrics page after the soak, 2,000 distinct unknown types among the events."""
ACME = {"customer": CUSTOMER, "company": COMPANY}
BETA = {"customer": CUSTOMER_B, "company": COMPANY_B}
RARE = {
    "ten-mib": 1,
    "one-mib": 2,
    "deeply-nested": 5,
    "type-200k-chars": 5,
    "very-long-field-name": 5,
    "invoice-with-200k-values": 5,
    "invoice-400-levels-deep": 20,
}
"""The large kinds, a few times each; the others share the rest of the 10,000."""


@dataclass(frozen=True)
class Deployment:
    """The reply topics of the run: ACME may use ``crm`` (the global list allows ``<run>-crm-*``),
    BETA only its own ``beta``; ``outside`` is in no list, ``internal`` is named like Kafka's."""

    crm: str
    beta: str
    outside: str
    internal: str

    @classmethod
    def fresh(cls) -> Deployment:
        run = uuid.uuid4().hex[:8]
        return cls(f"{run}-crm-replies", f"{run}-beta-replies", f"{run}-outside", f"__{run}-int")


@dataclass
class Feed:
    messages: list[tuple[bytes, bytes]] = field(default_factory=list)
    stage_of_bad: dict[bytes, str] = field(default_factory=dict)
    reply_topic_of_good: dict[bytes, str] = field(default_factory=dict)
    contacts: set[str] = field(default_factory=set)
    invoices: set[str] = field(default_factory=set)


def bad_kinds(
    topics: Topics, deployment: Deployment
) -> dict[str, tuple[Callable[[int], bytes], str]]:
    """Every hostile kind: the fixed values of the per-kind test, the refused ``reply_to``
    topics, and a new unknown type for each event."""

    def fixed(value: bytes) -> Callable[[int], bytes]:
        return lambda n: value

    def replying_to(topic: str, **extra: object) -> Callable[[int], bytes]:
        return lambda n: orjson.dumps(event(f"r-{n}", contact(n), reply_to=topic, **extra))

    kinds = {name: (fixed(value), stage) for name, (value, stage) in HOSTILE.items()}
    kinds |= {
        "reply-to-input-topic": (replying_to(topics.events), "route"),
        "reply-to-dead-letter-topic": (replying_to(topics.dlt), "route"),
        "reply-to-kafka-internal": (replying_to(deployment.internal), "route"),
        "reply-to-outside-the-list": (replying_to(deployment.outside), "route"),
        "reply-to-another-company": (replying_to(deployment.crm, tenant=BETA), "route"),
        "distinct-unknown-type": (
            lambda n: orjson.dumps(event(f"u-{n}", contact(n), type=f"vendor.kind-{n}")),
            "route",
        ),
    }
    return kinds


def soak_feed(topics: Topics, deployment: Deployment) -> Feed:
    feed = Feed()
    kinds = bad_kinds(topics, deployment)
    common = itertools.cycle(sorted(set(kinds) - set(RARE)))
    plan = [kind for kind, times in RARE.items() for _ in range(times)]
    plan += [next(common) for _ in range(BAD - len(plan))]
    for n, kind in enumerate(plan):
        make, stage = kinds[kind]
        key = f"bad-{kind}-{n}".encode()
        feed.messages.append((key, make(n)))
        feed.stage_of_bad[key] = stage
    for n in range(GOOD_CONTACTS + GOOD_INVOICES):
        tenant, own_topic = (ACME, deployment.crm) if n % 2 else (BETA, deployment.beta)
        reply_to = {"reply_to": own_topic} if n % 10 == 0 else {}
        key = f"good-{n}".encode()
        if n < GOOD_CONTACTS:
            feed.contacts.add(f"K{n:07d}")
            body = event(f"good-{n}", contact(n), tenant=tenant, **reply_to)
        else:
            feed.invoices.add(f"good-{n}")
            data = {"InvoiceNo": f"good-{n}", "Amount": n}
            body = event(f"good-{n}", data, type="ar_invoice.create", tenant=tenant, **reply_to)
        feed.messages.append((key, orjson.dumps(body)))
        feed.reply_topic_of_good[key] = reply_to.get("reply_to", topics.replies)
    random.Random(12).shuffle(feed.messages)
    return feed


async def test_ten_thousand_hostile_events_among_a_thousand_good_ones(
    replicas,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    sandbox,
    tmp_path: Path,
) -> None:
    deployment = Deployment.fresh()
    await create_topics(
        kafka_bootstrap,
        [deployment.crm, deployment.beta, deployment.outside, deployment.internal],
    )
    tenants = tmp_path / "soak-tenants.yaml"
    tenants.write_text(
        f"tenants:\n  - {{customer: '{CUSTOMER_B}', company: {COMPANY_B}, "
        f"token_env: TEST_TOKEN_B, reply_topics: ['{deployment.beta}']}}\n",
        encoding="utf-8",
    )
    feed = soak_feed(topics, deployment)
    await sandbox_post(sandbox, "/_sandbox/faults", {"latency_ms": 5})
    own = await Collector(kafka_bootstrap, [deployment.crm, deployment.beta]).start()
    service: ServiceProcess = replicas(
        SAGEBRIDGE_TENANTS_FILE=str(tenants),
        SAGEBRIDGE_REPLY_TOPICS=deployment.crm.replace("-crm-replies", "-crm-*"),
        SAGEBRIDGE_LOG_LEVEL="WARNING",
    )
    try:
        await service.wait_ready()
        await produce(kafka_bootstrap, topics.events, feed.messages, max_request_size=16 * MIB)

        default_keys = set(feed.stage_of_bad) | {
            k for k, t in feed.reply_topic_of_good.items() if t == topics.replies
        }
        await collector.wait_for_keys(topics.replies, default_keys, timeout_s=120)
        await collector.wait_for_keys(topics.dlt, set(feed.stage_of_bad), timeout_s=60)
        for topic in (deployment.crm, deployment.beta):
            wanted = {k for k, t in feed.reply_topic_of_good.items() if t == topic}
            await own.wait_for_keys(topic, wanted, timeout_s=60)

        rss = peak_rss_bytes(service.pid)
        async with httpx.AsyncClient(timeout=10) as client:
            metrics = (await client.get(f"http://127.0.0.1:{service.port}/metrics")).content
        assert service.terminate() == 0
    finally:
        await own.stop()

    # Every event answered once: good ones SUCCESS where they asked, bad ones ERROR at the
    # stage of their kind on the default reply topic.
    replies: list[Received] = [
        *collector.messages[topics.replies],
        *own.messages[deployment.crm],
        *own.messages[deployment.beta],
    ]
    assert Counter(r.key for r in replies) == Counter(k for k, _ in feed.messages)
    for reply in replies:
        body = reply.json()
        assert reply.key is not None
        if reply.key in feed.stage_of_bad:
            assert reply.topic == topics.replies
            assert (body["response"], body["stage"]) == ("ERROR", feed.stage_of_bad[reply.key])
        else:
            assert reply.topic == feed.reply_topic_of_good[reply.key]
            assert body["response"] == "SUCCESS", body

    # Every good record reached the Connector; nothing else did.
    stored_contacts = await stored_records(sandbox, "/customerContacts")
    stored_invoices = await stored_records(sandbox, "/accountsReceivable")
    assert Counter(r["record"]["ContactCode"] for r in stored_contacts) == Counter(feed.contacts)
    assert Counter(r["record"]["InvoiceNo"] for r in stored_invoices) == Counter(feed.invoices)
    assert (await sandbox_stats(sandbox))["violations"] == 0

    # What each topic holds: the input topic just the events produced; the dead-letter topic
    # one dead letter per bad event (no reply among them); the refused reply_to topics nothing.
    dead = await everything_in(kafka_bootstrap, topics.dlt)
    assert {d.key: d.headers["x-error-stage"].decode() for d in dead} == feed.stage_of_bad
    assert len(dead) == BAD
    held = await everything_in(kafka_bootstrap, topics.events)
    assert Counter(r.key for r in held) == Counter(k for k, _ in feed.messages)
    assert await everything_in(kafka_bootstrap, deployment.outside) == []
    assert await everything_in(kafka_bootstrap, deployment.internal) == []

    print(
        f"\nsoak: {BAD:,} hostile + {GOOD_CONTACTS + GOOD_INVOICES:,} good events; "
        f"peak RSS {rss / MIB:.0f} MiB, /metrics {len(metrics):,} bytes"
    )
    assert rss <= PEAK_RSS_BYTES, f"peak RSS {rss / MIB:.0f} MiB"
    assert len(metrics) <= METRICS_BYTES, f"/metrics is {len(metrics):,} bytes"
