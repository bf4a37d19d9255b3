"""The wiring: Kafka in (FastStream) -> intake -> lanes (HTTP) -> answers -> offsets.

This is the one module that knows both Kafka and HTTP. Everything it calls is either pure
(intake, offsets, flow control, isolation) or speaks to one side only (lanes via the connector,
the publisher, the ledger).

Flow of one poll: every record is registered with the offset tracker and passed through intake;
refused ones are answered at once, master data already in the ledger is answered from it, the
rest go to their lane. Lanes report outcomes to :meth:`Bridge._on_outcomes`, which records
master-data deliveries in the ledger, publishes replies and dead letters, waits for Kafka's
acknowledgement, marks the offsets answered and wakes the committer. The handler returns as
soon as records are handed over, so the next poll overlaps with delivery; flow control pauses
fetching while too many records are open.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.message import FAKE_CONSUMER, KafkaAckableMessage
from faststream.message import StreamMessage
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from redis.exceptions import RedisError

from service.answers.outcomes import Origin, Outcome, Stage, Subject
from service.answers.partitioning import Murmur2Partitioner
from service.answers.publisher import Answer, OutcomePublisher
from service.config import (
    Settings,
    Tenant,
    TenantDirectory,
    kafka_client_options,
    known_secrets,
)
from service.connector.client import ConnectorClient
from service.connector.lookup import already_in_sage
from service.connector.results import CallResult
from service.dev.testhooks import sigkill_on_marker
from service.intake.admit import Admitted, Intake, Refused
from service.intake.reply_topics import ReplyTopics
from service.intake.routes import Lane, load_route_table
from service.kafka.crash_guard import Condemned, CrashLoopGuard
from service.lanes import Delivery
from service.lanes.batch import BatchLane, BatchPolicy
from service.lanes.breaker import Breakers, State
from service.lanes.retry import Backoff
from service.lanes.serial import FencedPost, SerialLane, SerialPolicy
from service.offsets.committer import Committer
from service.offsets.flow import FlowControl
from service.offsets.log_ends import LogEnds
from service.offsets.tracker import OffsetTracker
from service.ops.health import Metrics, PeriodicCheck, Readiness, health_app
from service.ops.http_server import InLoopServer
from service.ops.logs import OutcomeLog
from service.state.client import connect as connect_redis
from service.state.crash_marks import MarkStore, blocking_client
from service.state.durability import Durability
from service.state.durability import check as check_durability
from service.state.epoch import Epoch, EpochMoved, ReplayDoubt
from service.state.ledger import Entry, Ledger, Standing, fingerprint
from service.state.locks import TenantLocks

log = logging.getLogger(__name__)

POLL_MAX_RECORDS = 1000
REVOKE_WAIT_S = 30.0
ASSIGN_WAIT_S = 5.0
"""Longest a question to Kafka may hold up taking partitions on (end offsets, commits)."""
FETCH_MAX_WAIT_MS = 50
PRODUCER_REQUEST_TIMEOUT_MS = 20_000
ACK_TIMEOUT_S = 2 * PRODUCER_REQUEST_TIMEOUT_MS / 1000 + 5
"""aiokafka settles a send within about two request timeouts (batch expiry plus one request in
flight); later than that, the acknowledgement is taken as lost and the answer is sent again."""
PRODUCER_BATCH_BYTES = 256 * 1024
FASTSTREAM_LOG = logging.getLogger("sagebridge.faststream")


@dataclass(slots=True)
class Ticket:
    """A consumed record, carried through the lanes so its answer can be published.
    (Not frozen: one is built per event, and frozen dataclasses pay a slow setattr per field.)"""

    partition: TopicPartition
    offset: int
    key: bytes | None
    value: bytes | None
    subject: Subject
    reply_topic: str
    received_at: float
    generation: int
    """The partition's assignment it was consumed under (see :mod:`service.offsets.tracker`)."""
    digest: str | None = None
    """Fingerprint of master data still to be recorded in the ledger once delivered."""


class Bridge:
    """Consumes, delivers, answers and commits. Built by :func:`create_app`."""

    def __init__(self, settings: Settings, tenants: TenantDirectory) -> None:
        self.settings = settings
        self.intake = Intake(
            load_route_table(settings.contracts_dir),
            tenants,
            settings.max_event_bytes,
            ReplyTopics.from_settings(settings),
        )
        self.intake = sigkill_on_marker(self.intake)  # a test hook, off unless its variable is set
        self.connector = ConnectorClient(settings.connector_url, settings.http_timeout_s)
        self.metrics = Metrics(known_types=self.intake.routes.routes)
        self.outcome_log = OutcomeLog(settings.log_level, secrets=known_secrets(settings, tenants))
        self.redis = connect_redis(
            settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0
        )
        # After a loss of Redis data, any call begun under the old data has ended at the
        # Connector within one lease (a call starts only under a lease that outlasts it) plus
        # the settle period (how long the Connector may go on after its client gave up).
        self.epoch = Epoch(
            self.redis,
            settings.redis_prefix,
            quarantine_s=settings.lock_ttl_ms / 1000 + settings.settle_after_unknown_s,
            on_declared=self._loss_declared,
        )
        self.ledger = Ledger(
            self.redis, settings.redis_prefix, settings.idempotency_retention_s, self.epoch
        )
        self.locks = TenantLocks(
            self.redis, settings.redis_prefix, settings.lock_ttl_ms / 1000, self.epoch
        )
        self.replays = ReplayDoubt()
        # The breaker must open before any record can use up its retry budget on an outage:
        # consecutive failures reach the threshold no later than one record's attempts do.
        self.breakers = Breakers(
            min(settings.breaker_threshold, settings.max_attempts),
            settings.breaker_cooldown_ms / 1000,
        )
        self.breakers.on_change = self._breaker_changed
        backoff = Backoff(settings.retry_backoff_ms / 1000)
        self.batch: BatchLane[Ticket] = BatchLane(
            self._timed_post("batch"),
            self._on_outcomes,
            BatchPolicy(
                settings.batch_max,
                settings.batch_wait_ms / 1000,
                settings.batch_concurrency,
                settings.max_attempts,
                backoff,
            ),
            self.breakers,
            on_dropped=self._on_dropped,
        )
        self.serial: SerialLane[Ticket] = SerialLane(
            self._timed_post("serial"),
            self._on_outcomes,
            self.locks,
            self.ledger,
            SerialPolicy(
                settings.lock_wait_ms / 1000,
                settings.max_attempts,
                backoff,
                call_timeout_s=settings.http_timeout_s,
                settle_s=settings.settle_after_unknown_s,
            ),
            self.breakers,
            on_dropped=self._on_dropped,
            doubtful=self._doubtful,
        )
        self.batch.on_call = self.metrics.batch_size.observe
        self.serial.on_lock_wait = self.metrics.lock_wait.observe
        self.serial.on_ledger_hit = self.metrics.idempotent_hits.inc
        self.tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self.crash_loop = CrashLoopGuard(
            MarkStore(self.redis, blocking_client(settings.redis_url), settings.redis_prefix),
            settings.crash_loop_limit,
            register=self.tracker.consumed,
        )
        self.flow = FlowControl(settings.max_in_flight)
        self.producer = AIOKafkaProducer(
            **kafka_client_options(settings),
            enable_idempotence=settings.kafka_idempotence,
            acks="all",
            linger_ms=5,
            partitioner=Murmur2Partitioner(),
            # Room for a few polls' worth of replies per partition: the publisher appends to
            # the batch it handed over while aiokafka has not drained it (service.answers.sender),
            # and a full 16 KB batch (the default, about 65 replies) makes the next wait.
            max_batch_size=PRODUCER_BATCH_BYTES,
            request_timeout_ms=PRODUCER_REQUEST_TIMEOUT_MS,
            max_request_size=max(1_048_576, settings.max_event_bytes + 65_536),
            client_id="sagebridge-answers",
        )
        self.publisher = OutcomePublisher(
            self.producer,
            default_reply_topic=settings.reply_topic,
            dlt_topic=settings.dlt_topic,
            max_value_bytes=settings.max_event_bytes,
            ack_timeout_s=ACK_TIMEOUT_S,
        )
        self.subscriber: Any = None
        """The FastStream subscriber; its aiokafka consumer is where offsets are committed."""
        self.assigned = False
        self.http: InLoopServer | None = None
        self.redis_check = PeriodicCheck(self._check_redis)
        """Once a second: whether Redis answers (what ``/readyz`` reports, however often it is
        asked), and with it the epoch watch (see :meth:`_check_redis`)."""
        self.rebalance_listener = _Rebalance(self)
        self._draining = False
        self._answering: set[asyncio.Task[None]] = set()
        self._answered = asyncio.Condition()
        self.committer = Committer(self.tracker)
        self._committing: asyncio.Task[None] | None = None
        self.log_ends = LogEnds(kafka_client_options(settings))
        self._assigned_partitions: set[TopicPartition] = set()
        self.ledger_durability: Durability | None = None
        """What Redis said of its persistence at start-up (``None`` until it answered)."""

    @property
    def consumer(self) -> AIOKafkaConsumer | None:
        """The subscriber's aiokafka consumer, once it exists (pausing, resuming, committing)."""
        return self.committer.consumer

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self.redis_check.start()
        self.http = InLoopServer(
            health_app(self.metrics, self.readiness),
            self.settings.http_host,
            self.settings.http_port,
        )
        await self.http.start()
        await self.producer.start()
        self._committing = asyncio.create_task(self.committer.run(), name="sagebridge-committer")

    async def drain(self) -> None:
        """Stop fetching, deliver and answer what was consumed, commit — within
        ``drain_timeout_s``; whatever is still open then is replayed by the next owner.
        Runs before the consumer closes, so the group sees our final offsets."""
        self._draining = True
        if self.consumer is not None and self.consumer.assignment():
            self.consumer.pause(*self.consumer.assignment())
        try:
            await asyncio.wait_for(self._finish_open_records(), self.settings.drain_timeout_s)
        except TimeoutError:
            log.warning(
                "shutdown: records still open after the drain timeout; they will be replayed",
                extra={"open": self.tracker.pending()},
            )
        await self.committer.commit_now()
        await self.crash_loop.release()  # a clean stop is no death

    async def _finish_open_records(self) -> None:
        while self.tracker.pending():
            await self.batch.drain()
            await self.serial.drain()
            await self._wait_answered(None, wait_s=None)

    async def close(self) -> None:
        if self._committing is not None:
            self._committing.cancel()
        await self.serial.close()
        await self.batch.close()
        await self.log_ends.aclose()
        await self.producer.stop()
        await self.connector.aclose()
        await self.locks.aclose()
        self.crash_loop.close()
        await self.redis_check.stop()
        await self.redis.aclose()
        if self.http is not None:
            await self.http.stop()

    async def readiness(self) -> Readiness:
        """Ready when Redis answers (as of its last periodic check), the serial lane is not
        paused, no tenant's Connector breaker is open and the group assigned us (an empty
        assignment counts: a spare replica is healthy, just idle)."""
        checks = {
            "kafka_assigned": self.assigned,
            "redis": self.redis_check.latest,
            "serial_lane": self.serial.redis_ok,
            "connector": not self.breakers.open_tenants(),
        }
        durability = self.ledger_durability
        ledger = durability.as_dict() if durability is not None else {"durable": None}
        return Readiness(all(checks.values()), checks, {"ledger": ledger})

    async def _check_redis(self) -> bool:
        """Whether Redis answers; while it does, also the epoch and the replay horizon (so a
        loss of its data is noticed even while no transactional record moves) and, once, the
        ledger's durability. Only the answer to PING decides readiness."""
        try:
            if not await asyncio.wait_for(self.redis.ping(), 1.0):
                return False
        except Exception:
            return False
        try:
            if self.ledger_durability is None:
                self.ledger_durability = await check_durability(self.redis)
                self._report_durability(self.ledger_durability)
            await self._check_epoch()
        except RedisError:
            pass  # the lanes report Redis trouble; the next check tries again
        except Exception:
            log.exception("Redis epoch check failed")
        return True

    def _timed_post(self, lane: str) -> FencedPost:
        connector, latency = self.connector, self.metrics.connector_latency

        async def post(
            tenant: Tenant, endpoint: str, payload: bytes, *, fence: int | None = None
        ) -> CallResult:
            started = time.perf_counter()
            result = await connector.post(tenant, endpoint, payload, fence=fence)
            latency.labels(lane, endpoint, type(result).__name__).observe(
                time.perf_counter() - started
            )
            return result

        return post

    def _breaker_changed(self, tenant: tuple[str, str], state: State) -> None:
        self.metrics.breaker_open.labels(*tenant).set(0 if state is State.CLOSED else 1)
        level = logging.INFO if state is State.CLOSED else logging.WARNING
        log.log(
            level,
            "connector breaker " + str(state),
            extra={"customer": tenant[0], "company": tenant[1]},
        )

    # -- consuming -------------------------------------------------------------------------

    async def on_batch(self, message: KafkaMessage) -> None:
        """FastStream batch handler: admit every record, hand the good ones to their lane."""
        records = message.raw_message
        if not isinstance(records, tuple):
            records = (records,)
        if self.committer.consumer is None and self.subscriber is not None:
            self.committer.consumer = self.subscriber.consumer
        take_in = await self.crash_loop.begin(
            records
        )  # marks the poll: see service.kafka.crash_guard
        now = time.monotonic()
        refused: list[tuple[Ticket, Outcome]] = []
        master_data: list[tuple[Ticket, Admitted]] = []
        partition = TopicPartition("", -1)
        generation = 0
        for record in take_in.records:
            if record.partition != partition.partition or record.topic != partition.topic:
                partition = TopicPartition(record.topic, record.partition)  # one per run
                generation = self.tracker.generation(partition)
            self.tracker.consumed(partition, record.offset)
            decision = self.intake.admit(record.value)
            ticket = Ticket(
                partition,
                record.offset,
                record.key,
                record.value,
                decision.subject,
                decision.reply_to or self.settings.reply_topic,
                now,
                generation,
            )
            if isinstance(decision, Refused):
                refused.append((ticket, decision.outcome))
            elif decision.route.lane is Lane.BATCH:
                ticket.digest = fingerprint(decision.event.data)
                master_data.append((ticket, decision))
            else:
                self.serial.submit(_delivery(ticket, decision))
        if take_in.condemned:
            refused.extend(self._condemned(take_in.condemned, now))
        if self.flow.took(len(records)):
            self._pause_fetching()
        self.metrics.in_flight.set(self.flow.open)
        if master_data:
            refused.extend(await self._submit_master_data(master_data))
        if refused:
            self._on_outcomes(refused)

    def _condemned(self, condemned: list[Condemned], now: float) -> list[tuple[Ticket, Outcome]]:
        """Records that stopped the service too often while being taken in: answered ERROR
        without being read (reading them is what killed it), so no event_id and the default
        reply topic; the dead letter keeps their bytes and offset."""
        answers: list[tuple[Ticket, Outcome]] = []
        for c in condemned:
            partition = TopicPartition(c.record.topic, c.record.partition)
            ticket = Ticket(
                partition,
                c.record.offset,
                c.record.key,
                c.record.value,
                Subject(None, None, None),
                self.settings.reply_topic,
                now,
                self.tracker.generation(partition),
            )
            answers.append((ticket, Outcome.failure(Stage.PARSE, c.message)))
        return answers

    async def _submit_master_data(
        self, items: list[tuple[Ticket, Admitted]]
    ) -> list[tuple[Ticket, Outcome]]:
        """Register each record in the ledger (one round trip) and send what it has not seen
        delivered; answer the rest from it. A record left in doubt by a crash is first looked
        up in Sage (:mod:`service.connector.lookup`). Master data is idempotent, so if Redis is
        unreachable it is sent without the check."""
        try:
            entries = await self.ledger.begin_many(
                [(a.tenant.key, a.event.event_id, t.digest or "") for t, a in items]
            )
        except RedisError as exc:
            log.warning(
                "ledger unreachable: master data sent without the duplicate check",
                extra={"error": type(exc).__name__},
            )
            entries = [Entry(Standing.NEW)] * len(items)
        answered: list[tuple[Ticket, Outcome]] = []
        in_doubt: list[tuple[Ticket, Admitted, Entry]] = []
        doubt = self.replays.may_doubt(self.epoch.known)
        for (ticket, admitted), found in zip(items, entries, strict=True):
            entry = found
            if doubt and found.standing is Standing.NEW and await self._doubtful(ticket):
                entry = Entry(Standing.IN_DOUBT)  # Redis lost the ledger: look it up first
            match entry.standing:
                case Standing.NEW:
                    self.batch.submit(_delivery(ticket, admitted))
                case Standing.DELIVERED:
                    self.metrics.idempotent_hits.inc()
                    answered.append(
                        (dataclasses.replace(ticket, digest=None), Outcome.success(entry.attempts))
                    )
                case Standing.CONFLICT:
                    answered.append(
                        (
                            dataclasses.replace(ticket, digest=None),
                            Outcome.reused_event_id(admitted.event.event_id),
                        )
                    )
                case Standing.IN_DOUBT:
                    in_doubt.append((ticket, admitted, entry))
        if in_doubt:
            self._background(self._reconcile(in_doubt))
        return answered

    async def _reconcile(self, items: list[tuple[Ticket, Admitted, Entry]]) -> None:
        """Records whose earlier call may have been cut off: answered if Sage already has
        them, sent otherwise."""
        found = await asyncio.gather(
            *(
                already_in_sage(self.connector.get, a.tenant, a.route, a.event.data)
                for _, a, _ in items
            )
        )
        answered: list[tuple[Ticket, Outcome]] = []
        for (ticket, admitted, entry), present in zip(items, found, strict=True):
            if present:
                self.metrics.idempotent_hits.inc()
                answered.append((ticket, Outcome.success(entry.attempts)))
            else:
                self.batch.submit(_delivery(ticket, admitted))
        log.info(
            "reconciled master data left in doubt",
            extra={"already_in_sage": len(answered), "sent_again": len(items) - len(answered)},
        )
        if answered:
            self._on_outcomes(answered)

    def _pause_fetching(self) -> None:
        if self.consumer is not None and self.consumer.assignment():
            self.consumer.pause(*self.consumer.assignment())
            self.metrics.fetch_paused.set(1)
            log.warning("fetching paused: in-flight limit reached", extra={"open": self.flow.open})

    def _resume_fetching(self) -> None:
        if self._draining or self.consumer is None:
            return
        self.consumer.resume(*self.consumer.assignment())
        self.metrics.fetch_paused.set(0)
        log.info("fetching resumed", extra={"open": self.flow.open})

    # -- answering -------------------------------------------------------------------------

    def _on_outcomes(self, results: Sequence[tuple[Ticket, Outcome]]) -> None:
        self._background(self._answer(list(results)))

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    def _on_dropped(self, tickets: Sequence[Ticket]) -> None:
        """Records given up unanswered (their partition was revoked): the new owner answers
        them, so they stay uncommitted here. Their ledger intents stay too: an intent may be a
        crashed predecessor's trace of a call that did land, which the new owner looks up."""
        for ticket in tickets:
            if ticket.generation == self.tracker.generation(ticket.partition):
                self.tracker.dropped(ticket.partition, ticket.offset)
        self._answered_count(len(tickets))
        self._background(self._notify_answered())

    def _answered_count(self, count: int) -> None:
        if self.flow.answered(count):
            self._resume_fetching()
        self.metrics.in_flight.set(self.flow.open)

    async def _notify_answered(self) -> None:
        async with self._answered:
            self._answered.notify_all()

    async def _answer(self, results: list[tuple[Ticket, Outcome]]) -> None:
        await self._record_master_data(results)
        current = [r for r in results if r[0].generation == self.tracker.generation(r[0].partition)]
        if len(current) < len(results):
            # Their partition was revoked meanwhile; its new owner answers them (a second,
            # possibly different verdict from us would contradict its).
            withheld = len(results) - len(current)
            log.info("answers for a revoked partition withheld", extra={"records": withheld})
            self._answered_count(withheld)
            results = current
            if not results:
                return
        await self.publisher.publish(
            [
                Answer(
                    ticket.subject,
                    outcome,
                    ticket.reply_topic,
                    ticket.key,
                    ticket.value,
                    Origin(ticket.partition.topic, ticket.partition.partition, ticket.offset),
                )
                for ticket, outcome in results
            ]
        )
        now = time.monotonic()
        counted: Counter[tuple[str, bool, str]] = Counter()
        for ticket, outcome in results:
            self.tracker.answered(ticket.partition, ticket.offset)
            counted[(ticket.subject.type or "", outcome.ok, str(outcome.stage or ""))] += 1
        self.metrics.count_outcomes(counted)
        self.outcome_log.write(_log_line(ticket, outcome, now) for ticket, outcome in results)
        if self.flow.answered(len(results)):
            self._resume_fetching()
        self.metrics.in_flight.set(self.flow.open)
        self.metrics.serial_paused.set(0 if self.serial.redis_ok else 1)
        async with self._answered:
            self._answered.notify_all()
        self.committer.wanted()

    async def _record_master_data(self, results: list[tuple[Ticket, Outcome]]) -> None:
        """Delivered master data goes into the ledger before its reply, so a redelivery after
        a crash is answered from there instead of being sent again."""
        delivered = [
            ((t.subject.tenant or ("", "")), t.subject.event_id or "", t.digest, o.attempts)
            for t, o in results
            if o.ok and t.digest is not None
        ]
        refused = [
            ((t.subject.tenant or ("", "")), t.subject.event_id or "")
            for t, o in results
            if not o.ok and t.digest is not None
        ]
        if not delivered and not refused:
            return
        try:
            if delivered:
                await self.ledger.delivered_many(delivered)
            if refused:  # the Connector refused them: fixed data may come under the same id
                await self.ledger.withdraw_many(refused)
        except RedisError as exc:
            log.warning(
                "ledger unreachable: delivered master data not recorded",
                extra={"error": type(exc).__name__, "records": len(delivered)},
            )

    async def _wait_answered(
        self, partitions: set[TopicPartition] | None, wait_s: float | None
    ) -> bool:
        async with self._answered:
            try:
                await asyncio.wait_for(
                    self._answered.wait_for(lambda: self.tracker.pending(partitions) == 0),
                    wait_s,
                )
            except TimeoutError:
                return False
        return True

    # -- rebalancing -----------------------------------------------------------------------

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before losing partitions: give up their records whose call has not started (the
        new owner answers them), let those inside a call finish (a call ends within the HTTP
        timeout), and commit what was answered. Until the group assigns us again we are not
        ready (a member thrown out of its group stays so)."""
        self.assigned = False

        def unwanted(ticket: Ticket) -> bool:
            return ticket.partition in revoked

        self.serial.withdraw(unwanted)
        self.batch.withdraw(unwanted)
        wait_s = max(REVOKE_WAIT_S, self.settings.http_timeout_s + 5)
        if not await self._wait_answered(revoked, wait_s=wait_s):
            log.warning(
                "partitions revoked with records still open; they will be replayed",
                extra={"open": self.tracker.pending(revoked)},
            )
        await self.committer.commit_now(only=revoked)
        self.tracker.forget(revoked)
        self.replays.revoked((tp.topic, tp.partition) for tp in revoked)
        await self.crash_loop.release(revoked)

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Note where each partition's log ended (records before that are replays an earlier
        owner may have sent) and make sure a Redis that lost its data is known before any of
        them is taken in. Redis trouble here is logged: the lanes wait for Redis anyway."""
        if self.committer.consumer is None and self.subscriber is not None:
            self.committer.consumer = self.subscriber.consumer
        consumer = self.consumer
        if (self.flow.paused or self._draining) and consumer is not None and assigned:
            consumer.pause(*assigned)
        if consumer is not None and assigned:
            self._assigned_partitions = set(assigned)
            await self._note_replays(assigned)
            try:
                await self._check_epoch()
            except RedisError as exc:  # the periodic Redis check tries again every second
                log.warning("Redis epoch not checked at assignment", extra={"error": repr(exc)})
        self.assigned = True

    async def _note_replays(self, assigned: set[TopicPartition]) -> None:
        """Where each assigned partition's log ends now: records before that are replays. If
        Kafka cannot say in time, every record counts as one (it matters only below a replay
        horizon, i.e. after a loss of Redis data)."""
        ends = await self.log_ends.of(list(assigned), ASSIGN_WAIT_S)
        self.replays.assigned({(tp.topic, tp.partition): end for tp, end in ends.items()})

    async def _loss_witnessed(
        self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]
    ) -> bool:
        """Redis has no epoch and we know none: is this a fresh deployment, or did Redis lose
        its data? If the group committed offsets for our partitions, it is not fresh. (Only
        asked then: the coordinator retries this request for as long as the group is in flux,
        so it is bounded, and an unanswered question counts as a fresh start.)"""
        if await self.epoch.current() is not None:
            return False
        coordinator = consumer._coordinator  # one request for all partitions
        try:
            found = await asyncio.wait_for(
                coordinator.fetch_committed_offsets(list(partitions)), ASSIGN_WAIT_S
            )
        except Exception as exc:
            log.warning("committed offsets unknown at assignment", extra={"error": repr(exc)})
            return False
        return any(meta.offset >= 0 for meta in found.values())

    async def _check_epoch(self) -> None:
        """Compare Redis's epoch with the one we work under (see :mod:`service.state.epoch`): first
        establish it (once partitions are assigned: their committed offsets are the witness of
        a loss before we started); later, declare a loss if it is gone, adopt another replica's.
        Then refresh the replay horizon."""
        consumer = self.consumer
        if not self.epoch.established:
            if consumer is None or not self._assigned_partitions:
                return
            witnessed = await self._loss_witnessed(consumer, self._assigned_partitions)
            await self.epoch.establish(witnessed, self._end_offsets_everywhere)
        current = await self.epoch.current()
        if current is None:
            await self.epoch.declare_lost(await self._end_offsets_everywhere())
        elif current != self.epoch.known:
            self.epoch.adopt(EpochMoved(current, declared=False))
        self.replays.load(self.epoch.known, await self.epoch.horizon())

    async def _end_offsets_everywhere(self) -> dict[tuple[str, int], int]:
        """The end offset of every partition of every input topic (ours or not): the replay
        horizon of a loss of Redis data."""
        consumer = self.consumer
        if consumer is None:
            return {}
        partitions = [
            TopicPartition(topic, number)
            for topic in self.settings.input_topics
            for number in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return {}
        ends = await self.log_ends.of(partitions, ASSIGN_WAIT_S)
        return {(tp.topic, tp.partition): end for tp, end in ends.items()}

    def _loss_declared(self) -> None:
        """A script of ours found Redis emptied: record the replay horizon now."""

        async def record() -> None:
            try:
                await self.epoch.raise_horizon(await self._end_offsets_everywhere())
                self.replays.load(self.epoch.known, await self.epoch.horizon())
            except Exception as exc:  # the periodic Redis check reloads it every second
                log.warning("replay horizon not recorded yet", extra={"error": repr(exc)})

        self._background(record())

    async def _doubtful(self, ticket: Ticket) -> bool:
        """May this record, unknown to the ledger, have been sent before Redis lost its data?"""
        tp = ticket.partition
        if not self.replays.is_replay(tp.topic, tp.partition, ticket.offset):
            return False
        if self.replays.stale(self.epoch.known):
            try:
                self.replays.load(self.epoch.known, await self.epoch.horizon())
            except RedisError:
                return True  # cannot tell: do not resend blindly
        return self.replays.doubtful(tp.topic, tp.partition, ticket.offset)

    def _report_durability(self, found: Durability) -> None:
        self.metrics.ledger_durable.set(1 if found.durable else 0)
        if found.durable:
            log.info("ledger durable", extra=found.as_dict())
        else:
            log.warning("ledger NOT durable: " + "; ".join(found.problems()), extra=found.as_dict())


def _delivery(ticket: Ticket, admitted: Admitted) -> Delivery[Ticket]:
    return Delivery(
        ticket,
        admitted.tenant,
        admitted.route.endpoint,
        admitted.event.data,
        identity=admitted.identity,
        event_id=admitted.event.event_id,
    )


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._bridge.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._bridge.on_assigned(set(assigned))


def _log_line(ticket: Ticket, outcome: Outcome, now: float) -> dict[str, Any]:
    """The outcome line of one event, carrying the ids an operator searches by."""
    subject = ticket.subject
    line: dict[str, Any] = {
        "msg": "event delivered" if outcome.ok else "event failed",
        "event_id": subject.event_id,
        "correlation_id": subject.correlation_id,
        "type": subject.type,
        "outcome": "SUCCESS" if outcome.ok else "ERROR",
        "attempts": outcome.attempts,
        "latency_ms": round((now - ticket.received_at) * 1000, 1),
    }
    if subject.tenant is not None:
        line["tenant"] = f"{subject.tenant[0]}/{subject.tenant[1]}"
    if not outcome.ok:
        line["stage"] = str(outcome.stage)
        line["error"] = outcome.message
    return line


def broker_security(settings: Settings) -> BaseSecurity | None:
    """The same TLS/SASL options as :func:`kafka_client_options`, in FastStream's terms."""
    options = kafka_client_options(settings)
    protocol: str = options["security_protocol"]
    use_ssl = protocol.endswith("SSL")
    context = options.get("ssl_context")
    if protocol.startswith("SASL"):
        mechanism = {
            "PLAIN": SASLPlaintext,
            "SCRAM-SHA-256": SASLScram256,
            "SCRAM-SHA-512": SASLScram512,
        }[options["sasl_mechanism"]]
        return mechanism(
            options["sasl_plain_username"],
            options["sasl_plain_password"],
            ssl_context=context,
            use_ssl=use_ssl,
        )
    return BaseSecurity(ssl_context=context, use_ssl=True) if use_ssl else None


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


async def no_body(message: StreamMessage[Any]) -> None:
    """The handler takes the raw records, so there is no body to decode."""
    return None


def create_app(settings: Settings, tenants: TenantDirectory) -> tuple[FastStream, Bridge]:
    """Build the FastStream application and the bridge behind it (not started); call inside a
    running event loop (aiokafka clients bind to it)."""
    broker = KafkaBroker(
        settings.kafka_bootstrap,
        client_id="sagebridge",
        logger=FASTSTREAM_LOG,  # through the root handler, so its lines are JSON like ours
        log_level=logging.DEBUG,
        security=broker_security(settings),
    )
    bridge = Bridge(settings, tenants)
    subscriber = broker.subscriber(
        *settings.input_topics,
        group_id=settings.group_id,
        batch=True,
        # One poll never brings more than half the in-flight limit, so open records stay
        # below 1.5 x MAX_IN_FLIGHT even when a full poll arrives just under the limit.
        max_records=min(POLL_MAX_RECORDS, max(1, settings.max_in_flight // 2)),
        batch_timeout_ms=max(settings.batch_wait_ms, 50),
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        # A fetch that finds nothing waits at most this long on the broker; the default 500 ms
        # shows up directly in end-to-end latency and after every resume (measured on Tansu).
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=max(100, settings.kafka_session_timeout_ms // 5),
        listener=bridge.rebalance_listener,
        parser=read_records_as_they_are,
        decoder=no_body,
        title="crm-events",
        description="CRM record events (contact upserts, invoices, ...) to deliver to Sage.",
    )
    subscriber(bridge.on_batch)
    bridge.subscriber = subscriber
    app = FastStream(
        broker, logger=FASTSTREAM_LOG, on_shutdown=[bridge.drain], after_shutdown=[bridge.close]
    )
    app.on_startup(bridge.start)
    return app, bridge
