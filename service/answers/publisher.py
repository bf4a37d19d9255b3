"""Publishing answers: the reply for every event, and a dead letter for every failure.

:meth:`OutcomePublisher.publish` returns only when Kafka has acknowledged every message it was
given — the caller commits input offsets after that, never before. Transient broker trouble is
retried without limit (losing a reply is worse than waiting). A ``reply_to`` topic that cannot
be written to (e.g. it does not exist) is not allowed to wedge the partition: after a few tries
its reply goes to the default reply topic instead, marked with an ``x-reply-to-failed`` header.

Waiting for an acknowledgement is bounded too. aiokafka settles every send within about two
request timeouts (success, or an error we retry); a send still unsettled after
``ack_timeout_s`` is taken as lost and sent again. Without this bound one lost acknowledgement
holds its records' offsets open, and so the partition's commits, for as long as the process
lives. The price is a possible duplicate reply, which the reply contract already allows.

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

from service.answers.outcomes import Origin, Outcome, Subject, dead_letter_headers, reply_body
from service.answers.sender import BatchingSender
from service.errors import NotAcknowledged

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
    headers: Sequence[tuple[str, bytes]] = ()
    """Carried on the reply and the dead letter alike: the trace's ``traceparent``."""


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
        ack_timeout_s: float,
    ) -> None:
        self._ack_timeout_s = ack_timeout_s
        self._max_value_bytes = max_value_bytes
        self.sender = BatchingSender(producer, pinned=(default_reply_topic, dlt_topic))
        self._default_reply_topic = default_reply_topic
        self._dlt_topic = dlt_topic
        self._retry_delay_s = retry_delay_s

    async def publish(self, answers: Sequence[Answer]) -> None:
        """Send replies (and dead letters for failures); return once all are acknowledged."""
        messages: list[_Message] = []
        default = self._default_reply_topic
        for answer in answers:
            correlation = (answer.subject.correlation_id or "").encode()
            headers = [("correlation_id", correlation)]
            if answer.headers:
                headers += answer.headers
            messages.append(  # positional: a keyword costs the dataclass's __init__ a third more
                _Message(
                    answer.reply_topic,
                    reply_body(answer.subject, answer.outcome),
                    answer.key,
                    headers,
                    answer.reply_topic != default,
                )
            )
            if not answer.outcome.ok:
                dead = _Message(
                    self._dlt_topic,
                    answer.value,
                    answer.key,
                    [
                        *dead_letter_headers(answer.subject, answer.outcome, answer.origin),
                        *answer.headers,
                    ],
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
        """Send each message once; return the ones that failed, ready to resend."""
        for message in messages:
            message.attempts += 1
        sends = await self.sender.send_all(messages)
        distinct = set(sends)  # a batch's messages share one acknowledgement
        waiting = [sent for sent in distinct if isinstance(sent, asyncio.Future)]
        if waiting:
            await asyncio.wait(waiting, timeout=self._ack_timeout_s)
        errors = {id(future): self._error_of(future) for future in waiting}
        if len(waiting) == len(distinct) and not any(errors.values()):
            return []  # every message acknowledged, without a look at each
        failed: list[_Message] = []
        for message, sent in zip(messages, sends, strict=True):
            error = sent if isinstance(sent, BaseException) else errors[id(sent)]
            if error is not None:
                failed.append(self._after_failure(message, error))
        return failed

    def _error_of(self, sent: asyncio.Future[Any]) -> BaseException | None:
        if not sent.done():
            # Should it still settle, read its result so asyncio does not warn about it.
            sent.add_done_callback(lambda late: late.cancelled() or late.exception())
            return NotAcknowledged(f"no acknowledgement within {self._ack_timeout_s:g} s")
        if sent.cancelled():
            return NotAcknowledged("the send was cancelled")
        return sent.exception()

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
                "detail": str(error),
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
