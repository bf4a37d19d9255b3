"""Publishing answers: the reply for every event, and a dead letter for every failure.

:meth:`OutcomePublisher.publish` returns only when Kafka has acknowledged every message it was
given — the caller commits input offsets after that, never before. Transient broker trouble is
retried without limit (losing a reply is worse than waiting). A ``reply_to`` topic that cannot
be written to (e.g. it does not exist) is not allowed to wedge the partition: after a few tries
its reply goes to the default reply topic instead, marked with an ``x-reply-to-failed`` header.

A dead letter carries the original value byte for byte — unless the value is larger than
Kafka will take (it was refused for its size in the first place): then the dead letter has no
value and an ``x-value-omitted`` header; the original stays readable at the ``x-original-*``
coordinates for as long as the input topic retains it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner

from service.outcomes import Origin, Outcome, Subject, dead_letter_headers, reply_body

log = logging.getLogger(__name__)

REDIRECT_AFTER_ATTEMPTS = 3


@dataclass(slots=True)
class Answer:
    """Everything needed to answer one consumed message."""

    subject: Subject
    outcome: Outcome
    reply_topic: str
    key: bytes | None
    value: bytes | None
    origin: Origin


@dataclass(slots=True)
class _Message:
    topic: str
    value: bytes | None
    key: bytes | None
    headers: list[tuple[str, bytes]]
    redirectable: bool
    attempts: int = 0

    def omit_value(self, reason: str) -> None:
        size = len(self.value or b"")
        self.value = None
        self.headers.append(("x-value-omitted", f"{size} bytes: {reason}".encode()))


class OutcomePublisher:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        *,
        default_reply_topic: str,
        dlt_topic: str,
        retry_delay_s: float = 0.5,
        max_value_bytes: int = 1_000_000,
    ) -> None:
        self._max_value_bytes = max_value_bytes
        self._partitioner = DefaultPartitioner()
        self._producer = producer
        self._default_reply_topic = default_reply_topic
        self._dlt_topic = dlt_topic
        self._retry_delay_s = retry_delay_s

    async def publish(self, answers: Sequence[Answer]) -> None:
        """Send replies (and dead letters for failures); return once all are acknowledged."""
        messages: list[_Message] = []
        for answer in answers:
            correlation = (answer.subject.correlation_id or "").encode()
            messages.append(
                _Message(
                    answer.reply_topic,
                    reply_body(answer.subject, answer.outcome),
                    answer.key,
                    [("correlation_id", correlation)],
                    redirectable=answer.reply_topic != self._default_reply_topic,
                )
            )
            if not answer.outcome.ok:
                dead = _Message(
                    self._dlt_topic,
                    answer.value,
                    answer.key,
                    dead_letter_headers(answer.subject, answer.outcome, answer.origin),
                    redirectable=False,
                )
                if len(answer.value or b"") > self._max_value_bytes:
                    dead.omit_value("larger than the event size limit")
                messages.append(dead)
        while messages:
            messages = await self._send_all(messages)
            if messages:
                await asyncio.sleep(self._retry_delay_s)

    async def _send_all(self, messages: list[_Message]) -> list[_Message]:
        """Send each message once; return the ones that failed, ready to resend.

        Messages are grouped into one record batch per topic-partition (the partition chosen
        from the key exactly as the default partitioner does), so a poll's hundreds of replies
        cost a few produce requests instead of hundreds of ``send`` calls."""
        groups: dict[tuple[str, int], list[_Message]] = {}
        failed: list[_Message] = []
        partitions_of: dict[str, list[int]] = {}
        for message in messages:
            message.attempts += 1
            partitions = partitions_of.get(message.topic)
            if partitions is None:
                try:
                    partitions = sorted(await self._producer.partitions_for(message.topic))
                except Exception as exc:  # metadata timeout, unknown topic
                    failed.append(self._after_failure(message, exc))
                    continue
                partitions_of[message.topic] = partitions
            partition = int(self._partitioner(message.key, partitions, partitions))
            groups.setdefault((message.topic, partition), []).append(message)
        sends: list[tuple[list[_Message], Any]] = []
        for (topic, partition), group in groups.items():
            for batch_messages, batch in self._batches(group):
                try:
                    future = await self._producer.send_batch(batch, topic, partition=partition)
                except Exception as exc:
                    failed.extend(self._after_failure(m, exc) for m in batch_messages)
                    continue
                sends.append((batch_messages, future))
        results = await asyncio.gather(*(future for _, future in sends), return_exceptions=True)
        for (batch_messages, _), result in zip(sends, results, strict=True):
            if isinstance(result, BaseException):
                failed.extend(self._after_failure(m, result) for m in batch_messages)
        return failed

    def _batches(self, group: list[_Message]) -> list[tuple[list[_Message], Any]]:
        """Fill record batches in order; a full batch starts the next one."""
        batches: list[tuple[list[_Message], Any]] = []
        current: list[_Message] = []
        batch = self._producer.create_batch()
        for message in group:
            appended = batch.append(
                key=message.key, value=message.value, timestamp=None, headers=message.headers
            )
            if appended is None and current:  # full: close it, start another
                batch.close()
                batches.append((current, batch))
                current, batch = [], self._producer.create_batch()
                appended = batch.append(
                    key=message.key, value=message.value, timestamp=None, headers=message.headers
                )
            current.append(message)
        if current:
            batch.close()
            batches.append((current, batch))
        return batches

    def _after_failure(self, message: _Message, error: BaseException) -> _Message:
        if isinstance(error, MessageSizeTooLargeError) and message.value is not None:
            message.omit_value("too large for the broker")
            return message
        log.warning(
            "publishing failed, will retry",
            extra={
                "topic": message.topic,
                "attempt": message.attempts,
                "error": type(error).__name__,
            },
        )
        if message.redirectable and message.attempts >= REDIRECT_AFTER_ATTEMPTS:
            log.error(
                "reply_to topic unusable, replying on the default topic",
                extra={"topic": message.topic},
            )
            message.headers.append(("x-reply-to-failed", message.topic.encode()))
            message.topic = self._default_reply_topic
            message.redirectable = False
        return message
