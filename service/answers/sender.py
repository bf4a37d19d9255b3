"""Sending many small Kafka messages at a fraction of aiokafka's per-message cost.

aiokafka's ``send`` pays for a coroutine, a future, partition lookups and accumulator
bookkeeping on every message; appending to a ``BatchBuilder`` and handing it over with
``send_batch`` pays for them once per batch (figures in bench/RESULTS.md). But aiokafka queues
one batch per partition and lets each linger, so many small builders handed over one after
another wait behind each other.

So messages for a partition first join the batch this sender handed over last, for as long as
aiokafka has not drained it and it has room — the way ``send`` joins the pending batch. Only
what does not fit starts a new batch, and only when there are at least ``batch_from`` of them;
a few messages, or large ones, go through ``send``, so a single answer never queues behind a
batch of its own.

What the sender keeps per topic is bounded, because ``reply_to`` lets producers choose topics:
a handed-over batch is forgotten once Kafka has acknowledged it, and the producer is told to
track metadata only for the pinned topics (default replies, dead letters) and the
:data:`TOPICS_TRACKED` most recently used others, then to refresh it: aiokafka rebuilds its
metadata from each answer for the tracked topics, so the others drop out. A later message to a
dropped topic costs one metadata request. (A message still in aiokafka's queue for a topic
dropped meanwhile fails and is sent again by the publisher, like any failed send.)
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder

from service.answers.partitioning import partition_for

Sent = asyncio.Future[Any] | BaseException
"""A message's acknowledgement to wait for (shared by the messages of one batch), or why it
could not be handed to the producer at all."""


class Outgoing(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> list[tuple[str, bytes]]: ...


@dataclass(slots=True)
class _Handed:
    """The batch last handed to aiokafka for a partition; it takes more until drained."""

    builder: BatchBuilder
    acknowledged: asyncio.Future[Any]


BATCH_FROM = 8
"""Messages for one partition, in one call, from which a new batch is started."""
MAX_BATCHED_BYTES = 4096
"""Larger values (dead letters carrying big events) go through ``send``, which checks each
against the size limits, so a refusal for size hits that message alone."""
TOPICS_TRACKED = 128
"""Topics besides the pinned ones whose metadata the producer keeps, the most recently used."""


class BatchingSender:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        *,
        batch_from: int = BATCH_FROM,
        max_batched_bytes: int = MAX_BATCHED_BYTES,
        pinned: Collection[str] = (),
        topics_tracked: int = TOPICS_TRACKED,
    ) -> None:
        self._producer = producer
        self._batch_from = batch_from
        self._max_batched_bytes = max_batched_bytes
        self._handed: dict[tuple[str, int], _Handed] = {}
        self._pinned = frozenset(pinned)
        self._topics_tracked = topics_tracked
        self._recent: dict[str, None] = {}
        """Topics other than the pinned ones, least recently used first (insertion order)."""
        self._in_use: Counter[str] = Counter()
        """Topics of the calls under way, which may be waiting to learn their partitions."""

    @property
    def partitions_holding_batches(self) -> int:
        """Partitions whose last handed-over batch is not yet acknowledged."""
        return len(self._handed)

    async def send_all(self, messages: Sequence[Outgoing]) -> list[Sent]:
        """Hand every message to the producer; one :data:`Sent` per message, in order.
        Messages of one partition keep their order."""
        topics = {m.topic for m in messages} - self._pinned
        self._in_use.update(topics)
        try:
            return await self._send_all(messages)
        finally:
            for topic in topics:
                self._in_use[topic] -= 1
                if not self._in_use[topic]:
                    del self._in_use[topic]
            self._track(topics)

    async def _send_all(self, messages: Sequence[Outgoing]) -> list[Sent]:
        sent: list[Sent | None] = [None] * len(messages)
        for (topic, place), members in (await self._by_partition(messages)).items():
            if isinstance(place, BaseException):
                for index in members:
                    sent[index] = place
                continue
            rest = self._join_handed((topic, place), members, messages, sent)
            if len(rest) >= self._batch_from:
                await self._hand_new((topic, place), rest, messages, sent)
        return [
            found if found is not None else await self._send_one(message)
            for message, found in zip(messages, sent, strict=True)
        ]

    def _track(self, topics: set[str]) -> None:
        """Move ``topics`` to the recent end; past the bound, have the producer track only the
        pinned, the recent and the in-use topics, and refresh its metadata. Runs after the
        messages were handed over, since learning a topic's partitions makes the producer
        track it again."""
        recent = self._recent
        for topic in topics:
            recent.pop(topic, None)
            recent[topic] = None
        if len(recent) > self._topics_tracked:
            for stale in list(recent)[: len(recent) - self._topics_tracked]:
                del recent[stale]
            self._producer.client.set_topics([*self._pinned, *recent, *self._in_use])
            self._producer.client.force_metadata_update()

    async def _by_partition(
        self, messages: Sequence[Outgoing]
    ) -> dict[tuple[str, int | BaseException], list[int]]:
        """Indexes of the messages that may be batched, per (topic, partition), placed by key
        as the producer would; a topic whose partitions cannot be learnt maps to the error.
        A partition's messages from its first large one on are left to ``send`` (after the
        batches, in order), so the partition keeps their order. Empty when too few messages
        for batching to pay."""
        groups: dict[tuple[str, int | BaseException], list[int]] = {}
        if len(messages) < self._batch_from:
            return groups
        partitions: dict[str, list[int] | BaseException] = {}
        after_large: set[tuple[str, int | BaseException]] = set()
        for index, message in enumerate(messages):
            known = partitions.get(message.topic)
            if known is None:
                try:
                    known = sorted(await self._producer.partitions_for(message.topic))
                except Exception as exc:  # metadata timeout, unknown topic
                    known = exc
                partitions[message.topic] = known
            place = known if isinstance(known, BaseException) else partition_for(message.key, known)
            partition = (message.topic, place)
            if isinstance(place, BaseException):
                groups.setdefault(partition, []).append(index)  # all fail now, none waits again
            elif len(message.value or b"") > self._max_batched_bytes:
                after_large.add(partition)
            elif partition not in after_large:
                groups.setdefault(partition, []).append(index)
        return groups

    def _join_handed(
        self,
        partition: tuple[str, int],
        members: list[int],
        messages: Sequence[Outgoing],
        sent: list[Sent | None],
    ) -> list[int]:
        """Append to the batch handed over last while it takes them; return the rest."""
        handed = self._handed.get(partition)
        if handed is None:
            return members
        for position, index in enumerate(members):
            message = messages[index]
            if not _append(handed.builder, message):  # drained, failed or full
                del self._handed[partition]
                return members[position:]
            sent[index] = handed.acknowledged
        return []

    async def _hand_new(
        self,
        partition: tuple[str, int],
        members: list[int],
        messages: Sequence[Outgoing],
        sent: list[Sent | None],
    ) -> None:
        builder = self._producer.create_batch()
        filling: list[int] = []
        for index in members:
            if not _append(builder, messages[index]):  # full: hand it over, start the next
                await self._hand_over(builder, partition, filling, sent)
                builder, filling = self._producer.create_batch(), []
                _append(builder, messages[index])
            filling.append(index)
        await self._hand_over(builder, partition, filling, sent)

    async def _hand_over(
        self,
        builder: BatchBuilder,
        partition: tuple[str, int],
        members: list[int],
        sent: list[Sent | None],
    ) -> None:
        topic, place = partition
        result: Sent
        try:
            acknowledged: asyncio.Future[Any] = await self._producer.send_batch(
                builder, topic, partition=place
            )
        except Exception as exc:  # the queue stayed full for a request timeout, or closing
            result = exc
        else:
            result = acknowledged
            handed = self._handed[partition] = _Handed(builder, acknowledged)
            acknowledged.add_done_callback(lambda _: self._forget(partition, handed))
        for index in members:
            sent[index] = result

    def _forget(self, partition: tuple[str, int], handed: _Handed) -> None:
        """An acknowledged batch is drained and takes no more messages."""
        if self._handed.get(partition) is handed:
            del self._handed[partition]

    async def _send_one(self, message: Outgoing) -> Sent:
        try:
            future: asyncio.Future[Any] = await self._producer.send(
                message.topic, message.value, key=message.key, headers=message.headers
            )
        except Exception as exc:  # metadata timeout, unknown topic, buffer trouble
            return exc
        return future


def _append(builder: BatchBuilder, message: Outgoing) -> bool:
    appended = builder.append(
        key=message.key, value=message.value, timestamp=None, headers=message.headers
    )
    return appended is not None
