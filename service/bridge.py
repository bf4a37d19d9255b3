"""The bridge: records in from Kafka, answers out to Kafka, offsets committed behind them.

One poll: every record is registered with the offset tracker and passed through intake;
refused records are answered at once, master data goes through the ledger to the batch lane
(:mod:`service.lanes.master_data`), transactions to the serial lane. Lanes report outcomes to
:class:`~service.answering.Answering`, which publishes replies and dead letters, waits for Kafka's
acknowledgement, marks the offsets answered and wakes the committer. The poll handler returns
as soon as records are handed over, so the next poll overlaps with delivery; fetching pauses
while too many records are open (:mod:`service.offsets.flow`).

Neither class here speaks HTTP or Redis: the lanes and the watch do, behind the interfaces
they were built with in :mod:`service.app`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from dataclasses import replace
from typing import Protocol

from aiokafka import ConsumerRecord, TopicPartition

from service.answering import Answering, Consumed
from service.answers.joined import Joint, Part
from service.answers.outcomes import Outcome, Stage, Subject
from service.intake.admit import Admitted, Imaging, Intake, Refused
from service.intake.image_step import ImageStep
from service.intake.routes import Lane
from service.intake.wire import schema_ids
from service.kafka.consumer import GroupConsumer
from service.kafka.crash_guard import Condemned, CrashLoopGuard
from service.kafka.epoch_watch import EpochWatch
from service.lanes import Delivery
from service.lanes.master_data import MasterData
from service.lanes.serial import SerialLane
from service.offsets.committer import Committer
from service.ops.traces import Tracing

log = logging.getLogger(__name__)


class SchemaPrefetch(Protocol):
    """Fetches Schema Registry schemas by id before intake reads the values naming them
    (:class:`service.registry.SchemaCache`)."""

    async def ensure(self, schema_ids: Collection[int]) -> None: ...


REVOKE_WAIT_S = 30.0


class Bridge:
    """Takes in each poll, drains on shutdown, and lets partitions go and come."""

    def __init__(
        self,
        intake: Intake,
        default_reply_topic: str,
        crash_guard: CrashLoopGuard,
        master_data: MasterData[Consumed],
        serial: SerialLane[Consumed],
        answering: Answering,
        committer: Committer,
        watch: EpochWatch,
        consumer: GroupConsumer,
        images: ImageStep,
        *,
        drain_timeout_s: float,
        call_timeout_s: float,
        tracing: Tracing | None = None,
        schemas: SchemaPrefetch | None = None,
    ) -> None:
        """``tracing`` (when enabled) starts each record's trace (:mod:`service.ops.traces`).
        ``schemas`` (with a Schema Registry) fetches the schemas a poll's values name before
        intake reads them; it waits while the registry is down. ``images`` reads and writes
        record images for the events that need them."""
        self._schemas = schemas
        self._tracing = tracing if tracing is not None and tracing.enabled else None
        self._intake = intake
        self._default_reply_topic = default_reply_topic
        self._crash_guard = crash_guard
        self._master_data = master_data
        self._serial = serial
        self._answering = answering
        self._tracker = answering.tracker
        self._committer = committer
        self._watch = watch
        self._consumer = consumer
        self._images = images
        self._drain_timeout_s = drain_timeout_s
        self._revoke_wait_s = max(REVOKE_WAIT_S, call_timeout_s + 5)
        self.assigned = False
        """Whether the group has assigned us (an empty assignment counts); ``/readyz``."""

    async def on_poll(self, records: tuple[ConsumerRecord, ...]) -> None:
        """Admit every record of a poll and hand the good ones to their lane. Events whose
        mapping keeps record images wait for one image step for the whole poll
        (:mod:`service.intake.image_step`), then go on in poll order."""
        take_in = await self._crash_guard.mark_poll(records)  # marks the poll: see its module
        if self._schemas is not None and (ids := schema_ids(r.value for r in take_in.records)):
            await self._schemas.ensure(ids)
        now = time.monotonic()
        taken: list[tuple[Consumed, Admitted | Refused | Imaging]] = []
        partition = TopicPartition("", -1)
        generation = 0
        for record in take_in.records:
            if record.partition != partition.partition or record.topic != partition.topic:
                partition = TopicPartition(record.topic, record.partition)  # one per run
                generation = self._tracker.generation(partition)
            self._tracker.consumed(partition, record.offset)
            trace = None
            if self._tracing is not None:
                trace = self._tracing.consumed(
                    record.topic, record.partition, record.offset, record.headers
                )
            decision = self._intake.admit(record.value, record.headers, record.topic)
            ticket = Consumed(  # positional: a keyword costs the dataclass's __init__ more
                partition,
                record.offset,
                record.key,
                record.value,
                decision.subject,
                decision.reply_to or self._default_reply_topic,
                now,
                generation,
                None,
                trace,
            )
            if trace is not None:
                trace.taken_in(decision.subject.event_id, decision.subject.type)
            taken.append((ticket, decision))
        stopped = [d for _, d in taken if isinstance(d, Imaging)]
        if stopped:
            finished = iter(await self._images.resolve(stopped))
            taken = [(t, next(finished) if isinstance(d, Imaging) else d) for t, d in taken]
        refused: list[tuple[Consumed, Outcome]] = []
        master_data: list[tuple[Consumed, Admitted]] = []
        for ticket, decision in taken:
            if isinstance(decision, Refused):
                refused.append((ticket, decision.outcome))
            elif isinstance(decision, Imaging):
                raise AssertionError("resolved above")
            elif decision.parts:
                master_data.extend(self._fan_out(ticket, decision))
            elif decision.route.lane is Lane.BATCH:
                master_data.append((ticket, decision))
            else:
                self._serial.submit(Delivery.of(ticket, decision, ticket.trace, packed=True))
        refused.extend(self._condemned(take_in.condemned, now))
        self._answering.opened(records)
        if master_data:
            refused.extend(await self._master_data.submit(master_data))
        if self._answering.flow.paused:
            self._master_data.hurry()  # nothing more arrives until some of it is answered
        if refused:
            self._answering.answer(refused)

    def _fan_out(self, ticket: Consumed, decision: Admitted) -> list[tuple[Consumed, Admitted]]:
        """One ticket per record of an event that stands for several; master data returned
        for the caller's ledger round trip, transactions submitted here."""
        names = tuple(p.event.event_id.rpartition("/")[2] for p in decision.parts)
        joint = Joint(ticket, names)
        master_data: list[tuple[Consumed, Admitted]] = []
        for index, part in enumerate(decision.parts):
            child = replace(ticket, subject=part.subject, part_of=Part(joint, index))
            if part.route.lane is Lane.BATCH:
                master_data.append((child, part))
            else:
                self._serial.submit(Delivery.of(child, part, ticket.trace, packed=True))
        return master_data

    def _condemned(self, condemned: list[Condemned], now: float) -> list[tuple[Consumed, Outcome]]:
        """Records that stopped the service too often while being taken in: answered ERROR
        without being read (reading them is what killed it), so no event_id and the default
        reply topic; the dead letter keeps their bytes and offset."""
        answers: list[tuple[Consumed, Outcome]] = []
        for c in condemned:
            partition = TopicPartition(c.record.topic, c.record.partition)
            ticket = Consumed(
                partition,
                c.record.offset,
                c.record.key,
                c.record.value,
                Subject(None, None, None),
                self._default_reply_topic,
                now,
                self._tracker.generation(partition),
            )
            answers.append((ticket, Outcome.failure(Stage.PARSE, c.message)))
        return answers

    async def drain(self) -> None:
        """Stop fetching, deliver and answer what was consumed, commit — within
        ``drain_timeout_s``; whatever is still open then is replayed by the next owner.
        Runs before the consumer closes, so the group sees our final offsets. A transactional
        call in flight is finished and answered even past that (cut off, its records would be
        ``unknown_outcome``); queued transactional records are left to the next owner."""
        self._answering.draining = True
        self._consumer.pause()
        self._serial.stop()
        try:
            await asyncio.wait_for(self._finish_open_records(), self._drain_timeout_s)
        except TimeoutError:
            await self._serial.drain()
            await self._answering.published()
            log.warning(
                "shutdown: records still open after the drain timeout; they will be replayed",
                extra={"open": self._tracker.pending()},
            )
        await self._committer.commit_now()
        await self._crash_guard.release()  # a clean stop is no death

    async def _finish_open_records(self) -> None:
        while self._tracker.pending():
            await self._master_data.drain()
            await self._serial.drain()
            await self._answering.wait_answered(None, wait_s=None)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before losing partitions: give up their records whose call has not started (the
        new owner answers them), let those inside a call finish (a call ends within the HTTP
        timeout), and commit what was answered. Until the group assigns us again we are not
        ready (a member thrown out of its group stays so)."""
        self.assigned = False

        def unwanted(ticket: Consumed) -> bool:
            return ticket.partition in revoked

        self._serial.withdraw(unwanted)
        self._master_data.withdraw(unwanted)
        if not await self._answering.wait_answered(revoked, wait_s=self._revoke_wait_s):
            log.warning(
                "partitions revoked with records still open; they will be replayed",
                extra={"open": self._tracker.pending(revoked)},
            )
        await self._committer.commit_now(only=revoked)
        self._tracker.forget(revoked)
        self._watch.revoked(revoked)
        await self._crash_guard.release(revoked)

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Keep new partitions paused if fetching is, and let the epoch watch learn where
        their logs end before any of their records is taken in."""
        if self._answering.flow.paused or self._answering.draining:
            self._consumer.pause(assigned)
        await self._watch.assigned(assigned)
        self.assigned = True
