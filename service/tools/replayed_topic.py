"""What ``dlt replay`` has replayed, kept in Kafka so that it survives Redis.

Redis can lose its data (a restart without persistence, a failover, an eviction). If the
record of replayed letters lived only there, the same ``dlt replay`` run again would send every
letter a second time, and with the ledger gone too, invoices would be posted twice. So each
replayed letter is also recorded on a compacted topic (``SAGEBRIDGE_DLT_REPLAYED_TOPIC``,
default ``<DLT_TOPIC>.replayed``), keyed by the letter's place, ``<dlt>@<partition>:<offset>``
(the same text as the ``x-replayed-from`` header), valued with where it went and when. A letter
whose send failed is forgotten again with a tombstone (a null value), as compaction expects.

The Redis sets (:mod:`service.state.replayed`) stay: their ``SADD`` is what keeps two runs at
once from both sending a letter. The topic is the record that lasts; a run reads it whole at its
start (one short key per letter ever replayed).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from service.config import Settings
from service.errors import ToolError
from service.kafka.security import kafka_client_options
from service.tools.dead_letter_reader import read_to_end
from service.tools.dead_letters import iso

COMPACTED = {"cleanup.policy": "compact"}


def letter_key(dlt_topic: str, partition: int, offset: int) -> bytes:
    """A letter's key on the topic: ``<dlt>@<partition>:<offset>``."""
    return f"{dlt_topic}@{partition}:{offset}".encode()


def _place(key: bytes, dlt_topic: str) -> tuple[int, int] | None:
    """(partition, offset) of a key of ``dlt_topic``; ``None`` for another topic's key."""
    topic, _, place = key.decode("utf-8", "replace").rpartition("@")
    partition, _, offset = place.partition(":")
    if topic != dlt_topic or not partition.isdigit() or not offset.isdigit():
        return None
    return int(partition), int(offset)


class ReplayedTopic:
    """Reads and writes the record of replayed letters for ``settings.dlt_topic``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.topic = settings.replayed_topic
        self._dlt = settings.dlt_topic

    async def ensure(self) -> None:
        """Create the topic, compacted, if it does not exist; :class:`ToolError` if it cannot
        be (no right to create topics: an administrator must create it)."""
        admin = AIOKafkaAdminClient(**kafka_client_options(self._settings))
        await admin.start()
        try:
            if self.topic in await admin.list_topics():
                return
            try:
                await admin.create_topics([NewTopic(self.topic, 1, 1, topic_configs=COMPACTED)])
            except TopicAlreadyExistsError:
                return
            except KafkaError as exc:
                raise ToolError(
                    f"dlt replay: cannot create {self.topic!r} (where replayed dead letters are "
                    f"recorded): {type(exc).__name__}; create it with cleanup.policy=compact, "
                    "or name another in SAGEBRIDGE_DLT_REPLAYED_TOPIC"
                ) from None
        finally:
            await admin.close()

    async def load(self) -> dict[int, set[int]]:
        """Per dead-letter partition, the offsets recorded as replayed (empty if the topic does
        not exist yet)."""
        consumer = AIOKafkaConsumer(
            **kafka_client_options(self._settings),
            group_id=None,
            enable_auto_commit=False,
            client_id="sagebridge-dlt-replayed-reader",
        )
        await consumer.start()
        replayed: dict[int, set[int]] = defaultdict(set)
        try:
            if self.topic not in await consumer.topics():
                return replayed
            partitions = consumer.partitions_for_topic(self.topic) or set()
            reading = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            async for records in read_to_end(consumer, reading):
                for record in records:
                    place = _place(record.key or b"", self._dlt)
                    if place is None:
                        continue
                    if record.value is None:
                        replayed[place[0]].discard(place[1])
                    else:
                        replayed[place[0]].add(place[1])
        finally:
            await consumer.stop()
        return replayed

    async def record(
        self, producer: AIOKafkaProducer, partition: int, sent_to: Iterable[tuple[int, str]]
    ) -> None:
        """Record letters (offset, topic sent to) of ``partition`` as replayed; returns once
        Kafka acknowledged every one (raises if it did not)."""
        now = iso(datetime.now(UTC))
        acks = [
            await producer.send(
                self.topic,
                orjson.dumps({"to": to, "at": now}),
                key=letter_key(self._dlt, partition, offset),
            )
            for offset, to in sent_to
        ]
        for ack in acks:
            await ack

    async def forget(self, producer: AIOKafkaProducer, partition: int, offsets: list[int]) -> None:
        """Tombstones for letters recorded but not sent, so a later run sends them."""
        acks = [
            await producer.send(self.topic, None, key=letter_key(self._dlt, partition, offset))
            for offset in offsets
        ]
        for ack in acks:
            await ack
