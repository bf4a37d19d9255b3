"""The answering side in Kafka: the reply producer, the publisher of replies and dead letters,
the offsets that follow them, and :class:`~service.answering.Answering`, which lanes report to."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer, TopicPartition

from service.answering import Answering
from service.answers.producer import ACK_TIMEOUT_S, reply_producer
from service.answers.publisher import OutcomePublisher
from service.config import Settings
from service.kafka.consumer import GroupConsumer
from service.offsets.committer import Committer
from service.offsets.flow import FlowControl
from service.offsets.tracker import OffsetTracker
from service.ops.logs import OutcomeLog
from service.ops.metrics import Metrics


@dataclass(frozen=True, slots=True)
class AnsweringSide:
    """Everything between an outcome and its committed offset."""

    tracker: OffsetTracker[TopicPartition]
    producer: AIOKafkaProducer
    publisher: OutcomePublisher
    committer: Committer
    answering: Answering


def build_answering(
    settings: Settings, consumer: GroupConsumer, metrics: Metrics, secrets: Iterable[str]
) -> AnsweringSide:
    """The answering side of ``consumer``'s records; ``secrets`` are masked in outcome logs."""
    tracker: OffsetTracker[TopicPartition] = OffsetTracker()
    producer = reply_producer(settings)
    publisher = OutcomePublisher(
        producer,
        default_reply_topic=settings.reply_topic,
        dlt_topic=settings.dlt_topic,
        max_value_bytes=settings.max_event_bytes,
        ack_timeout_s=ACK_TIMEOUT_S,
    )
    committer = Committer(tracker, consumer)
    answering = Answering(
        publisher,
        tracker,
        FlowControl(settings.max_in_flight, settings.max_in_flight_bytes),
        consumer,
        committer,
        metrics,
        OutcomeLog(settings.log_level, secrets=secrets),
    )
    return AnsweringSide(tracker, producer, publisher, committer, answering)
