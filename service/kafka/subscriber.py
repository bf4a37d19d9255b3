"""The input side in FastStream's terms: the broker, the batch subscriber and its rebalance
listener.

The subscriber hands each poll to the bridge untouched (:func:`read_records_as_they_are`),
commits nothing itself (offsets are committed by :mod:`service.offsets.committer`, only once
records are answered) and tells the bridge before partitions move.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.message import FAKE_CONSUMER, KafkaAckableMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.message import StreamMessage

from service.config import Settings
from service.kafka.consumer import GroupConsumer
from service.kafka.security import broker_security

FASTSTREAM_LOG = logging.getLogger("sagebridge.faststream")
POLL_MAX_RECORDS = 1000
FETCH_MAX_WAIT_MS = 50
"""A fetch that finds nothing waits at most this long on the broker: the default 500 ms would
show up directly in end-to-end latency and after every resume."""
FETCH_MAX_BYTES = 1024 * 1024
"""At most this much in one fetch answer, and from one partition. Fetched records are held
outside the in-flight count: aiokafka keeps each partition's until they are polled, and reading
an answer holds it about three times over (the socket buffer, its copy, each partition's
records). Larger fetches only raise the peak: a poll takes at most POLL_MAX_RECORDS. A larger
record still comes, alone (the broker always returns the first batch whole)."""


class Rebalancing(Protocol):
    """What the bridge does before partitions are taken away and after they are given."""

    async def on_revoked(self, revoked: set[TopicPartition]) -> None: ...

    async def on_assigned(self, assigned: set[TopicPartition]) -> None: ...


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, target: Rebalancing) -> None:
        self._target = target

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._target.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._target.on_assigned(set(assigned))


def make_broker(settings: Settings) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id="sagebridge",
        logger=FASTSTREAM_LOG,  # through the root handler, so its lines are JSON like ours
        log_level=logging.DEBUG,
        security=broker_security(settings),
    )


def declare(
    broker: KafkaBroker,
    settings: Settings,
    consumer: GroupConsumer,
    rebalancing: Rebalancing,
    on_poll: Callable[[tuple[ConsumerRecord, ...]], Awaitable[None]],
) -> BatchSubscriber:
    """Declare the input subscriber on ``broker``, handing each poll to ``on_poll``;
    ``consumer`` follows the aiokafka consumer FastStream creates for it."""
    subscriber = broker.subscriber(
        *settings.input_topics,
        group_id=settings.group_id,
        batch=True,
        # One poll never brings more than half the in-flight limit, so open records stay
        # below 1.5 x MAX_IN_FLIGHT even when a full poll arrives just under the limit.
        max_records=min(POLL_MAX_RECORDS, max(1, settings.max_in_flight // 2)),
        # Likewise for bytes: one fetch brings at most half of MAX_IN_FLIGHT_BYTES.
        fetch_max_bytes=min(FETCH_MAX_BYTES, settings.max_in_flight_bytes // 2),
        max_partition_fetch_bytes=min(FETCH_MAX_BYTES, settings.max_in_flight_bytes // 2),
        batch_timeout_ms=max(settings.batch_wait_ms, 50),
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=max(100, settings.kafka_session_timeout_ms // 5),
        listener=_Listener(rebalancing),
        parser=read_records_as_they_are,
        decoder=records_as_body,
        title="crm-events",
        description="CRM record events (contact upserts, invoices, ...) to deliver to Sage.",
    )

    async def handle(records: Any) -> None:
        await on_poll(records if isinstance(records, tuple) else (records,))

    subscriber(handle)
    consumer.follow(subscriber)
    return subscriber


async def read_records_as_they_are(records: tuple[ConsumerRecord, ...]) -> StreamMessage[Any]:
    """FastStream parser for the batch subscriber: hand over the raw records untouched.

    FastStream's own batch parser decodes every header as UTF-8 and every body as JSON. A
    header that is not UTF-8 then fails the whole poll before our handler sees it, and those
    records would be neither answered nor held back from the commit. sagebridge reads the raw
    records itself (intake answers bad bodies), so the parser must not look inside them."""
    first, last = records[0], records[-1]
    batch_id = f"{first.topic}-{first.partition}-{first.offset}-{last.offset}"
    return KafkaAckableMessage(
        body=b"",
        raw_message=records,
        consumer=FAKE_CONSUMER,
        message_id=batch_id,
        correlation_id=batch_id,
    )


async def records_as_body(message: StreamMessage[Any]) -> Any:
    """FastStream decoder: the poll's raw records are the handler's body. Taken as the body,
    not through FastStream's context (a ``KafkaMessage`` parameter): its context is read by a
    synchronous function, which fast_depends runs in a worker thread, a thread hop per poll."""
    return message.raw_message
