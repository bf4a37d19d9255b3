"""Reading what the service wrote, for tests: a live collector of replies and dead letters, and
everything a topic holds. (Topics and events come from :mod:`service.dev`.)"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from service.dev.devstack import HoleGuard
from service.dev.topics import Topics


@dataclass
class Received:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]

    def json(self) -> Any:
        return orjson.loads(self.value) if self.value is not None else None


@dataclass
class Collector:
    """Reads topics from the beginning, in the background, into ``messages``."""

    bootstrap: str
    topics: list[str]
    messages: dict[str, list[Received]] = field(default_factory=dict)
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _holes: HoleGuard[Any] = field(default_factory=HoleGuard)
    """Tansu can skip a record for a live reader; the guard reads such holes again."""

    async def start(self) -> Collector:
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await self._consumer.start()
        for t in self.topics:
            self.messages[t] = []
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            for partition, fetched in batches.items():
                records, hole = self._holes.accept(partition, fetched)
                if hole is not None:
                    self._consumer.seek(partition, hole)
                for r in records:
                    self.messages[r.topic].append(
                        Received(
                            r.topic,
                            r.partition,
                            r.offset,
                            r.key,
                            r.value,
                            {k: v for k, v in (r.headers or ())},
                        )
                    )
            if batches:
                async with self._arrived:
                    self._arrived.notify_all()

    async def wait_for(self, topic: str, count: int, timeout_s: float = 60.0) -> list[Received]:
        """At least ``count`` messages on ``topic``, or AssertionError at the deadline."""
        try:
            async with self._arrived:
                await asyncio.wait_for(
                    self._arrived.wait_for(lambda: len(self.messages[topic]) >= count), timeout_s
                )
        except TimeoutError:
            raise AssertionError(
                f"{topic}: {len(self.messages[topic])} of {count} messages after {timeout_s}s"
            ) from None
        return self.messages[topic]

    async def wait_for_keys(
        self, topic: str, keys: set[bytes], timeout_s: float = 60.0
    ) -> list[Received]:
        """At least one message with each of ``keys`` on ``topic``."""
        try:
            async with self._arrived:
                await asyncio.wait_for(
                    self._arrived.wait_for(lambda: keys <= {r.key for r in self.messages[topic]}),
                    timeout_s,
                )
        except TimeoutError:
            seen = {r.key for r in self.messages[topic]}
            raise AssertionError(f"{topic}: no message for keys {keys - seen}") from None
        return self.messages[topic]

    async def wait_for_events(
        self, topic: str, event_ids: set[str], timeout_s: float = 60.0
    ) -> list[Received]:
        """A reply for every one of ``event_ids`` on ``topic`` (repeats allowed)."""

        def answered() -> set[str]:
            return {r.json().get("event_id") for r in self.messages[topic]}

        try:
            async with self._arrived:
                await asyncio.wait_for(
                    self._arrived.wait_for(lambda: event_ids <= answered()), timeout_s
                )
        except TimeoutError:
            missing = sorted(event_ids - answered())
            raise AssertionError(
                f"{topic}: {len(missing)} events unanswered after {timeout_s}s, e.g. "
                f"{missing[:5]} ({self._holes.holes} hole(s) in the offsets read again)"
            ) from None
        return self.messages[topic]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._consumer is not None:
            await self._consumer.stop()


END_MARK = b"--end-of-topic-marker--"


async def everything_in(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[Received]:
    """Every record ``topic`` holds, read from the beginning. To know where the end is, this
    first writes a marker into each partition (Tansu's end offsets cannot be trusted for it),
    so call it once whatever is checked has been written, and ignore markers after that."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        for partition in partitions:
            await producer.send_and_wait(topic, END_MARK, key=END_MARK, partition=partition)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: list[Received] = []
    holes: HoleGuard[Any] = HoleGuard()
    try:
        reading = {TopicPartition(topic, p) for p in partitions}
        consumer.assign(list(reading))
        await consumer.seek_to_beginning(*reading)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while reading:
            assert asyncio.get_running_loop().time() < deadline, f"{topic}: no end marker"
            for partition, fetched in (await consumer.getmany(timeout_ms=100)).items():
                records, hole = holes.accept(partition, fetched)
                if hole is not None:
                    consumer.seek(partition, hole)
                for r in records:
                    if partition not in reading:
                        break
                    if r.key == END_MARK:
                        reading.discard(partition)
                        continue
                    headers = {k: v for k, v in (r.headers or ())}
                    found.append(Received(r.topic, r.partition, r.offset, r.key, r.value, headers))
    finally:
        await consumer.stop()
    return found


async def committed_offsets(bootstrap: str, topics: Topics) -> list[int]:
    """The service group's committed offset of each input partition, in partition order (-1
    for none), read without joining the group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=topics.group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()  # a consumer that subscribes to nothing knows no topic yet
        numbers = sorted(consumer.partitions_for_topic(topics.events) or ())
        found = [await consumer.committed(TopicPartition(topics.events, n)) for n in numbers]
    finally:
        await consumer.stop()
    return [-1 if offset is None else offset for offset in found]


async def committed(bootstrap: str, topics: Topics) -> int:
    """The service group's committed offset of the one input partition (-1 for none)."""
    return (await committed_offsets(bootstrap, topics))[0]
