"""Reading the dead-letter topic without consuming it for anyone.

No consumer group: the reader assigns every partition by hand, reads from the beginning to the
end each partition had when the reader first fetched from it, and stops. Nothing is committed,
so no group's position moves and the service (or another reader) is not disturbed. Letters that
arrive meanwhile are left for the next run.

The end is taken from the high watermark of a fetch answer, not from a ListOffsets request:
Tansu (the tests' broker) answers ListOffsets with the last batch's base offset plus one (see
:mod:`service.offsets.log_ends`), while the high watermark is right there and on Kafka alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from service.config import Settings
from service.kafka.security import kafka_client_options
from service.tenants import TenantKey
from service.tools.dead_letters import DeadLetter, describe

POLL_MS = 500
BATCH = 500
"""Most letters handed out at once: bounds memory, and paces ``dlt replay``'s progress lines."""


class MissingTopic(Exception):
    """The dead-letter topic does not exist on the cluster."""


class DeadLetterReader:
    """``async with DeadLetterReader(settings) as reader: async for batch in reader.batches()``."""

    def __init__(self, settings: Settings) -> None:
        self._topic = settings.dlt_topic
        self._max_event_bytes = settings.max_event_bytes
        self._default = (
            TenantKey(settings.customer, settings.company)
            if settings.customer and settings.company
            else None
        )
        self._consumer = AIOKafkaConsumer(
            **kafka_client_options(settings),
            group_id=None,
            enable_auto_commit=False,
            client_id="sagebridge-dlt-reader",
        )
        self.partitions: list[int] = []
        """The topic's partitions, known once the reader is entered."""

    async def __aenter__(self) -> DeadLetterReader:
        try:
            await self._consumer.start()
            if self._topic not in await self._consumer.topics():
                raise MissingTopic(f"the dead-letter topic {self._topic!r} does not exist")
            self.partitions = sorted(self._consumer.partitions_for_topic(self._topic) or ())
        except BaseException:
            await self._consumer.stop()
            raise
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._consumer.stop()

    async def batches(self) -> AsyncIterator[list[DeadLetter]]:
        """Every letter up to the ends, in fetched batches (in order within a partition)."""
        reading = [TopicPartition(self._topic, p) for p in self.partitions]
        async for records in read_to_end(self._consumer, reading):
            yield [self._letter(r) for r in records]

    def _letter(self, record: Any) -> DeadLetter:
        return describe(
            record.topic,
            record.partition,
            record.offset,
            record.timestamp,
            record.key,
            record.value,
            dict(record.headers or ()),
            default_tenant=self._default,
            max_event_bytes=self._max_event_bytes,
        )


async def read_to_end(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> AsyncIterator[list[Any]]:
    """Every record of ``partitions`` from the beginning up to the end each had when first
    fetched from, in fetched batches (in order within a partition), by a consumer without a
    group: nothing is committed."""
    reading = list(partitions)
    consumer.assign(reading)
    await consumer.seek_to_beginning(*reading)
    ends: dict[TopicPartition, int] = {}
    while reading:
        fetched = await consumer.getmany(*reading, timeout_ms=POLL_MS, max_records=BATCH)
        batch: list[Any] = []
        for tp in list(reading):
            high = consumer.highwater(tp)
            if high is None:
                continue  # not fetched from yet
            end = ends.setdefault(tp, high)
            batch += [r for r in fetched.get(tp, ()) if r.offset < end]
            if await consumer.position(tp) >= end:
                reading.remove(tp)
        if batch:
            yield batch
