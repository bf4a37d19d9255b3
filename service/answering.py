"""Answering: the sink every lane reports to. It publishes each outcome (a reply, and for an
ERROR a dead letter), waits for Kafka's acknowledgement, marks the offsets answered, wakes the
committer, and resumes fetching once few enough records are open (:mod:`service.offsets.flow`).

:class:`Consumed` is the bridge's note of a record while its event travels. Both sit beside
:mod:`service.bridge`, which takes records in; this module sends their answers out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from service.answers.joined import Part
from service.answers.outcomes import Origin, Outcome, Stage, Subject
from service.answers.publisher import Answer, OutcomePublisher
from service.kafka.consumer import GroupConsumer
from service.lanes.gathered import Gathered
from service.offsets.committer import Committer
from service.offsets.flow import FlowControl
from service.offsets.tracker import OffsetTracker
from service.ops.logs import OutcomeLog
from service.ops.metrics import Metrics
from service.ops.traces import Publishing, RecordTrace

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Consumed:
    """A consumed record as the bridge keeps it while its event travels: where it came from
    (to commit), its bytes (for the dead letter) and whom to answer."""

    partition: TopicPartition
    offset: int
    key: bytes | None
    value: bytes | None
    subject: Subject
    reply_topic: str
    received_at: float
    generation: int
    """The partition's assignment it was consumed under (see :mod:`service.offsets.tracker`)."""
    part_of: Part[Consumed] | None = None
    """Set on one record of an event that stands for several: the event is answered once,
    when all are (:mod:`service.answers.joined`)."""
    trace: RecordTrace | None = None
    """The trace its event continues (:mod:`service.ops.traces`); ``None`` when untraced."""


class Answering:
    """Publishes outcomes and moves the offsets behind them: the sink every lane reports to."""

    def __init__(
        self,
        publisher: OutcomePublisher,
        tracker: OffsetTracker[TopicPartition],
        flow: FlowControl,
        consumer: GroupConsumer,
        committer: Committer,
        metrics: Metrics,
        outcome_log: OutcomeLog,
    ) -> None:
        self.tracker = tracker
        self.flow = flow
        self._publisher = publisher
        self._consumer = consumer
        self._committer = committer
        self._metrics = metrics
        self._outcome_log = outcome_log
        self._tasks: set[asyncio.Task[None]] = set()
        self._gathered: Gathered[tuple[Consumed, Outcome]] = Gathered(
            self._answer, self._background
        )
        self._answered = asyncio.Condition()
        self.draining = False
        """Set on shutdown: fetching stays paused however many records are answered."""

    def answer(self, results: Sequence[tuple[Consumed, Outcome]]) -> None:
        """Publish these outcomes (in the background: lanes must not block).

        Outcomes handed in during one turn of the event loop are answered together, in the
        order they came: a hundred companies' serial lanes each answer one invoice at a time,
        and one publish, one outcome-log write and one wake-up for all of them costs a fraction
        of one each."""
        self._gathered.add(_joined(results))

    def dropped(self, tickets: Sequence[Consumed]) -> None:
        """Records given up unanswered (their partition was revoked): the new owner answers
        them, so they stay uncommitted here. Their ledger intents stay too: an intent may be a
        crashed predecessor's trace of a call that did land, which the new owner looks up."""
        tickets = [
            t if t.part_of is None else t.part_of.joint.whole
            for t in tickets
            if t.part_of is None or t.part_of.joint.give_up()
        ]
        for ticket in tickets:
            if ticket.generation == self.tracker.generation(ticket.partition):
                self.tracker.dropped(ticket.partition, ticket.offset)
        self._closed(tickets)
        self._background(self._notify())

    def opened(self, records: Sequence[ConsumerRecord]) -> None:
        """Records were consumed: pause fetching past the in-flight limits."""
        if self.flow.consumed(len(records), _total_size([r.value for r in records])):
            self._consumer.pause()
            self._metrics.fetch_paused.set(1)
            log.warning(
                "fetching paused: in-flight limit reached",
                extra={"open": self.flow.open, "open_bytes": self.flow.open_bytes},
            )
        self._metrics.in_flight.set(self.flow.open)
        self._metrics.in_flight_bytes.set(self.flow.open_bytes)

    async def wait_answered(
        self, partitions: set[TopicPartition] | None, wait_s: float | None
    ) -> bool:
        """Wait until no record of ``partitions`` (all, if ``None``) is open."""
        async with self._answered:
            try:
                await asyncio.wait_for(
                    self._answered.wait_for(lambda: self.tracker.pending(partitions) == 0),
                    wait_s,
                )
            except TimeoutError:
                return False
        return True

    async def published(self) -> None:
        """Wait until the outcomes handed in so far are published (or failed to be)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _notify(self) -> None:
        async with self._answered:
            self._answered.notify_all()

    def _closed(self, tickets: Sequence[Consumed]) -> None:
        resume = self.flow.answered(len(tickets), _total_size([t.value for t in tickets]))
        if resume and not self.draining:
            self._consumer.resume()
            self._metrics.fetch_paused.set(0)
            log.info("fetching resumed", extra={"open": self.flow.open})
        self._metrics.in_flight.set(self.flow.open)
        self._metrics.in_flight_bytes.set(self.flow.open_bytes)

    async def _answer(self, results: list[tuple[Consumed, Outcome]]) -> None:
        current: list[tuple[Consumed, Outcome]] = []
        withheld: list[Consumed] = []
        generations: dict[TopicPartition, int] = {}  # each partition's looked up once
        for ticket, outcome in results:
            generation = generations.get(ticket.partition)
            if generation is None:
                generation = generations[ticket.partition] = self.tracker.generation(
                    ticket.partition
                )
            if ticket.generation == generation:
                current.append((ticket, outcome))
            else:
                withheld.append(ticket)
        if withheld:
            # Their partition was revoked meanwhile; its new owner answers them (a second,
            # possibly different verdict from us would contradict its).
            log.info("answers for a revoked partition withheld", extra={"records": len(withheld)})
            self._closed(withheld)
            results = current
        if results:
            publishing: list[Publishing] = []
            await self._publisher.publish([_answer_of(t, o, publishing) for t, o in results])
            for span in publishing:
                span.end()
            now = time.monotonic()
            tickets = [ticket for ticket, _ in results]
            self.tracker.answered_all(tickets)
            self._metrics.count_outcomes(_counted(results))
            self._outcome_log.write_outcomes(
                (t.subject, o, now - t.received_at) for t, o in results
            )
            self._closed(tickets)
            self._committer.wanted()
        await self._notify()


def _counted(results: list[tuple[Consumed, Outcome]]) -> Counter[tuple[str, bool, str]]:
    """Answered events per (type, ok, stage) for the metrics, counted before the labels are
    made: one label text per kind of outcome, not one per event."""
    by_kind: Counter[tuple[str | None, bool, Stage | None]] = Counter(
        [(ticket.subject.type, outcome.ok, outcome.stage) for ticket, outcome in results]
    )  # counted in C, not by a ``+= 1`` per event
    counted: Counter[tuple[str, bool, str]] = Counter()
    for (event_type, ok, stage), count in by_kind.items():
        counted[(event_type or "", ok, str(stage or ""))] += count
    return counted


def _total_size(values: list[bytes | None]) -> int:
    """Bytes of the values together (a tombstone has none); one call per poll or answered
    batch, not one per record."""
    return sum([len(value) for value in values if value is not None])


def _joined(results: Sequence[tuple[Consumed, Outcome]]) -> list[tuple[Consumed, Outcome]]:
    """The outcomes to publish: a part's outcome only completes its event's."""
    joined: list[tuple[Consumed, Outcome]] = []
    for ticket, outcome in results:
        part = ticket.part_of
        if part is None:
            joined.append((ticket, outcome))
        elif (whole := part.joint.note(part.index, outcome)) is not None:
            joined.append((part.joint.whole, whole))
    return joined


def _answer_of(ticket: Consumed, outcome: Outcome, publishing: list[Publishing]) -> Answer:
    """The answer to publish; a traced ticket's reply span is started and added to
    ``publishing``, for the caller to end once Kafka has acknowledged it."""
    origin = Origin(ticket.partition.topic, ticket.partition.partition, ticket.offset)
    answer = Answer(ticket.subject, outcome, ticket.reply_topic, ticket.key, ticket.value, origin)
    if ticket.trace is not None:
        span = ticket.trace.publishing(ticket.reply_topic)
        publishing.append(span)
        answer.headers = span.headers
    return answer
