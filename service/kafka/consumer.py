"""The group consumer, as the rest of the service uses it: pause, resume, commit, ask.

FastStream creates the aiokafka consumer when the broker starts, after the application is
built, so nothing can be handed that consumer at construction. Everything that needs it is
handed this object instead, which reaches the subscriber's consumer once it exists: before that
there is nothing to pause or commit, and every method says so by doing nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition


class Subscriber(Protocol):
    """The part of a FastStream Kafka subscriber this module uses."""

    consumer: AIOKafkaConsumer | None


class GroupConsumer:
    def __init__(self) -> None:
        self._subscriber: Subscriber | None = None

    def follow(self, subscriber: Subscriber) -> None:
        """Use ``subscriber``'s consumer from now on; done once, where the subscriber is
        declared (:func:`service.kafka.subscriber.declare`)."""
        self._subscriber = subscriber

    @property
    def consumer(self) -> AIOKafkaConsumer | None:
        return getattr(self._subscriber, "consumer", None)

    def assignment(self) -> set[TopicPartition]:
        consumer = self.consumer
        return set(consumer.assignment()) if consumer is not None else set()

    def pause(self, partitions: Collection[TopicPartition] | None = None) -> None:
        """Stop fetching ``partitions`` (all assigned ones by default)."""
        consumer = self.consumer
        if consumer is not None:
            chosen = consumer.assignment() if partitions is None else partitions
            if chosen:
                consumer.pause(*chosen)

    def resume(self) -> None:
        """Fetch every assigned partition again."""
        consumer = self.consumer
        if consumer is not None:
            consumer.resume(*consumer.assignment())

    async def commit(self, positions: Mapping[TopicPartition, int]) -> None:
        consumer = self.consumer
        if consumer is not None:
            await consumer.commit(dict(positions))

    def partitions_of(self, topic: str) -> list[TopicPartition]:
        """Every partition of ``topic`` the cluster metadata knows, assigned to us or not."""
        consumer = self.consumer
        numbers = consumer.partitions_for_topic(topic) if consumer is not None else None
        return [TopicPartition(topic, number) for number in sorted(numbers or ())]

    async def any_committed(self, partitions: Collection[TopicPartition], within_s: float) -> bool:
        """Whether the group committed an offset for any of ``partitions``. The coordinator
        retries this question for as long as the group is in flux, so it is bounded by
        ``within_s``; raises ``TimeoutError`` (or Kafka's error) when it has no answer."""
        consumer = self.consumer
        if consumer is None:
            return False
        coordinator = consumer._coordinator  # one request for all partitions
        found = await asyncio.wait_for(
            coordinator.fetch_committed_offsets(list(partitions)), within_s
        )
        return any(meta.offset >= 0 for meta in found.values())

    async def commit_beginnings(
        self, partitions: Collection[TopicPartition], within_s: float
    ) -> None:
        """Commit each partition's first offset (where a new group starts reading anyway): a
        trace in Kafka that the group has run, for :mod:`service.kafka.epoch_watch`. Raises
        ``TimeoutError`` (or Kafka's error) when Kafka does not take it within ``within_s``."""
        consumer = self.consumer
        if consumer is None or not partitions:
            return
        firsts = await asyncio.wait_for(consumer.beginning_offsets(list(partitions)), within_s)
        await asyncio.wait_for(consumer.commit(dict(firsts)), within_s)
