"""The publisher against a real broker: answers sent as batches per partition arrive once each,
intact, and in the partition Kafka's default partitioner gives their key; small publishes and
large dead letters still go one by one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from service.answers.outcomes import Origin, Outcome, Stage, Subject
from service.answers.partitioning import Murmur2Partitioner
from service.answers.publisher import REDIRECT_AFTER_ATTEMPTS, Answer, OutcomePublisher
from service.answers.sender import BATCH_FROM, MAX_BATCHED_BYTES
from service.dev.topics import Topics, create_topics
from tests.support.kafka import Collector, Received

PARTITIONS = 3
METADATA_WAIT_MS = 1500
"""How long the producer waits to learn a topic's partitions (an unusable topic's wait)."""


@pytest.fixture
async def reply_topics(kafka_bootstrap: str) -> Topics:
    fresh = Topics.fresh()
    await create_topics(kafka_bootstrap, [fresh.replies, fresh.dlt], partitions=PARTITIONS)
    return fresh


@pytest.fixture
async def publisher(
    kafka_bootstrap: str, reply_topics: Topics
) -> AsyncIterator[tuple[OutcomePublisher, AIOKafkaProducer]]:
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        linger_ms=5,
        partitioner=Murmur2Partitioner(),
        request_timeout_ms=METADATA_WAIT_MS,
    )
    await producer.start()
    yield (
        OutcomePublisher(
            producer,
            default_reply_topic=reply_topics.replies,
            dlt_topic=reply_topics.dlt,
            retry_delay_s=0.0,
            ack_timeout_s=30,
        ),
        producer,
    )
    await producer.stop()


def count_calls(producer: AIOKafkaProducer, *methods: str) -> dict[str, list[str]]:
    """The topic of every call of the producer's ``methods`` (they still run)."""
    calls: dict[str, list[str]] = {name: [] for name in methods}
    for name in methods:
        original = getattr(producer, name)

        async def counted(
            *args: Any, _name: str = name, _original: Any = original, **kw: Any
        ) -> Any:
            calls[_name].append(args[1] if _name == "send_batch" else args[0])
            return await _original(*args, **kw)

        setattr(producer, name, counted)
    return calls


async def publish_and_read(
    bootstrap: str, sender: OutcomePublisher, batches: list[list[Answer]], expect: dict[str, int]
) -> dict[str, list[Received]]:
    """Publish each list of answers in turn; read back at least ``expect[topic]`` per topic."""
    collector = await Collector(bootstrap, list(expect)).start()
    try:
        for answers in batches:
            await sender.publish(answers)
        return {topic: await collector.wait_for(topic, count) for topic, count in expect.items()}
    finally:
        await collector.stop()


def answer(
    n: int,
    topic: str,
    *,
    ok: bool = True,
    value: bytes = b"{}",
    key: bytes | None = None,
    message: str = "refused",
) -> Answer:
    outcome = Outcome.success(1) if ok else Outcome.failure(Stage.CONNECTOR, message)
    return Answer(
        Subject(f"ev-{n}", f"corr-{n}", "contact.upsert", ("1001", "ACME")),
        outcome,
        topic,
        key if key is not None else f"key-{n}".encode(),
        value,
        Origin("events", 0, n),
    )


async def test_a_large_publish_arrives_once_each_in_the_keys_partition(
    kafka_bootstrap: str,
    reply_topics: Topics,
    publisher: tuple[OutcomePublisher, AIOKafkaProducer],
) -> None:
    sender, producer = publisher
    calls = count_calls(producer, "send", "send_batch")
    big = b"x" * (MAX_BATCHED_BYTES + 1)
    answers = [answer(n, reply_topics.replies, ok=n % 10 != 0) for n in range(600)]
    answers[599] = answer(599, reply_topics.replies, ok=False, value=big)  # last: see below
    read = await publish_and_read(
        kafka_bootstrap, sender, [answers], {reply_topics.replies: 600, reply_topics.dlt: 61}
    )
    replies, dead = read[reply_topics.replies], read[reply_topics.dlt]
    assert calls["send"] == [reply_topics.dlt], "only the large dead letter goes on its own"
    assert len(calls["send_batch"]) >= 2 * PARTITIONS, "replies and dead letters in batches"
    every = list(range(PARTITIONS))
    assert sorted(r.json()["event_id"] for r in replies) == sorted(f"ev-{n}" for n in range(600))
    for message in replies + dead:
        assert message.partition == DefaultPartitioner()(message.key, every, every)
    by_id = {r.json()["event_id"]: r for r in replies}
    assert by_id["ev-7"].headers["correlation_id"] == b"corr-7"
    assert by_id["ev-7"].json()["response"] == "SUCCESS"
    assert by_id["ev-10"].json()["response"] == "ERROR"
    dead_by_key = {d.key: d for d in dead}
    assert len(dead_by_key) == 61
    assert dead_by_key[b"key-599"].value == big
    assert dead_by_key[b"key-20"].headers["x-error-stage"] == b"connector"
    # replies of one partition keep the order they were given in
    for partition in every:
        ids = [int(r.json()["event_id"][3:]) for r in replies if r.partition == partition]
        assert ids == sorted(ids)


async def test_publishes_too_small_to_batch_still_arrive(
    kafka_bootstrap: str,
    reply_topics: Topics,
    publisher: tuple[OutcomePublisher, AIOKafkaProducer],
) -> None:
    sender, producer = publisher
    calls = count_calls(producer, "send_batch")
    small = BATCH_FROM - 1
    batches = [
        [answer(n, reply_topics.replies) for n in range(first, first + small)]
        for first in range(0, 3 * small, small)
    ]
    read = await publish_and_read(
        kafka_bootstrap, sender, batches, {reply_topics.replies: 3 * small}
    )
    replies = read[reply_topics.replies]
    assert len({r.key for r in replies}) == 3 * small
    assert calls["send_batch"] == []


async def test_a_partitions_messages_keep_their_order_around_a_large_one(
    kafka_bootstrap: str,
    reply_topics: Topics,
    publisher: tuple[OutcomePublisher, AIOKafkaProducer],
) -> None:
    sender, _ = publisher
    too_large = "x" * (MAX_BATCHED_BYTES + 1)
    answers = [  # one key: one partition; the fourth reply is too large to batch
        answer(
            n,
            reply_topics.replies,
            ok=False,
            key=b"one-key",
            message=too_large if n == 3 else "refused",
        )
        for n in range(30)
    ]
    read = await publish_and_read(kafka_bootstrap, sender, [answers], {reply_topics.replies: 30})
    replies = read[reply_topics.replies]
    in_partition = sorted(replies, key=lambda r: r.offset)
    assert [r.json()["event_id"] for r in in_partition] == [f"ev-{n}" for n in range(30)]


async def test_an_unusable_reply_topic_costs_one_metadata_wait_per_attempt_not_per_reply(
    kafka_bootstrap: str,
    reply_topics: Topics,
    publisher: tuple[OutcomePublisher, AIOKafkaProducer],
) -> None:
    sender, producer = publisher
    calls = count_calls(producer, "partitions_for", "send")
    invalid = "no such topic!"  # Tansu creates missing topics, but not invalid names
    answers = [answer(n, invalid) for n in range(12)]
    read = await publish_and_read(kafka_bootstrap, sender, [answers], {reply_topics.replies: 12})
    replies = read[reply_topics.replies]
    assert {r.headers["x-reply-to-failed"] for r in replies} == {invalid.encode()}
    assert invalid not in calls["send"], "no reply waited on its own for the topic's metadata"
    assert calls["partitions_for"].count(invalid) == REDIRECT_AFTER_ATTEMPTS
