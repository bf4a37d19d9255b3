"""The publisher's bounded wait for Kafka's acknowledgement (pure logic, with a stand-in
producer: a lost acknowledgement cannot be provoked on demand from a real broker)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from service.answers.outcomes import Origin, Outcome, Subject
from service.answers.publisher import Answer, OutcomePublisher


class ProducerLosingFirstAcks:
    """Answers the first ``lose`` sends with a future that never settles, the rest at once."""

    def __init__(self, lose: int) -> None:
        self.lose = lose
        self.sent: list[tuple[str, bytes | None]] = []
        self.lost: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, value: bytes | None, **_: Any) -> asyncio.Future[Any]:
        self.sent.append((topic, value))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if len(self.lost) < self.lose:
            self.lost.append(future)
        else:
            future.set_result(None)
        return future


def _answers(count: int) -> list[Answer]:
    return [
        Answer(
            Subject(event_id=f"ev-{n}", correlation_id=None, type="contact.upsert", tenant=None),
            Outcome.success(1),
            "replies",
            None,
            b"{}",
            Origin("events", 0, n),
        )
        for n in range(count)
    ]


def _publisher(producer: ProducerLosingFirstAcks) -> OutcomePublisher:
    return OutcomePublisher(
        producer,  # type: ignore[arg-type]
        default_reply_topic="replies",
        dlt_topic="dlt",
        retry_delay_s=0.0,
        ack_timeout_s=0.05,
    )


async def test_an_answer_whose_ack_never_comes_is_sent_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = ProducerLosingFirstAcks(lose=1)
    with caplog.at_level(logging.WARNING):
        await asyncio.wait_for(_publisher(producer).publish(_answers(3)), 5)
    assert len(producer.sent) == 4, "three answers, the one without an ack sent twice"
    assert producer.sent[0] == producer.sent[3]
    assert any(getattr(r, "error", None) == "NotAcknowledged" for r in caplog.records)


async def test_a_lost_ack_that_settles_late_is_read_not_left_dangling() -> None:
    producer = ProducerLosingFirstAcks(lose=2)
    await asyncio.wait_for(_publisher(producer).publish(_answers(2)), 5)
    after_publishers_callback = asyncio.Event()  # callbacks run in the order they were added
    producer.lost[0].add_done_callback(lambda _: after_publishers_callback.set())
    producer.lost[0].set_exception(RuntimeError("late failure"))
    await after_publishers_callback.wait()
    assert producer.lost[0]._log_traceback is False  # asyncio will not warn "never retrieved"
