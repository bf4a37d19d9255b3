"""The wiring: Kafka in (FastStream) -> intake -> lanes (HTTP) -> answers -> offsets.

This is the one module that knows both Kafka and HTTP. Everything it calls is either pure
(intake, offsets, isolation) or speaks to one side only (lanes via the connector, publisher).

Flow of one poll: every record is registered with the offset tracker, passed through intake,
and either answered at once (refused) or handed to its lane. Lanes report outcomes to
:meth:`Bridge._on_outcomes`, which publishes replies and dead letters, waits for Kafka's
acknowledgement, marks the offsets answered and wakes the committer. The handler returns as
soon as records are handed over, so the next poll overlaps with delivery; ``max_in_flight``
bounds how many records may be open at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from redis.asyncio import Redis

from service.connector import CallResult, ConnectorClient
from service.httpserve import InLoopServer
from service.intake import Admitted, Intake, Refused
from service.lanes import Delivery
from service.lanes.batch import BatchLane, BatchPolicy
from service.lanes.retry import Backoff
from service.lanes.serial import FencedPost, SerialLane, SerialPolicy
from service.ledger import Ledger
from service.locks import TenantLocks
from service.observability import Metrics, Readiness, health_app
from service.offsets import OffsetTracker
from service.outcomes import Origin, Outcome, Subject
from service.publisher import Answer, OutcomePublisher
from service.routes import Lane, load_route_table
from service.settings import Settings, Tenant, TenantDirectory

log = logging.getLogger(__name__)

POLL_MAX_RECORDS = 1000
REVOKE_WAIT_S = 30.0


@dataclass(frozen=True, slots=True)
class Ticket:
    """A consumed record, carried through the lanes so its answer can be published."""

    partition: TopicPartition
    offset: int
    key: bytes | None
    value: bytes | None
    subject: Subject
    reply_topic: str


class InFlightLimit:
    """Bounds consumed-but-unanswered records: the handler waits here, so fetching stops."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open = 0
        self._changed = asyncio.Condition()

    async def acquire(self, count: int) -> None:
        async with self._changed:
            # A poll larger than the whole limit still goes through once everything else is done.
            await self._changed.wait_for(
                lambda: self._open == 0 or self._open + count <= self._limit
            )
            self._open += count

    async def release(self, count: int) -> None:
        async with self._changed:
            self._open -= count
            self._changed.notify_all()

    @property
    def open(self) -> int:
        return self._open


class Bridge:
    """Consumes, delivers, answers and commits. Built by :func:`create_app`."""

    def __init__(self, settings: Settings, tenants: TenantDirectory) -> None:
        self.settings = settings
        self.intake = Intake(
            load_route_table(settings.contracts_dir), tenants, settings.max_event_bytes
        )
        self.connector = ConnectorClient(settings.connector_url, settings.http_timeout_s)
        self.metrics = Metrics()
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
        )
        self.redis = Redis.from_url(
            settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0
        )
        self.locks = TenantLocks(self.redis, settings.redis_prefix, settings.lock_ttl_ms / 1000)
        self.serial: SerialLane[Ticket] = SerialLane(
            self._timed_post("serial"),
            self._on_outcomes,
            self.locks,
            Ledger(self.redis, settings.redis_prefix, settings.idempotency_retention_s),
            SerialPolicy(settings.lock_wait_ms / 1000, settings.max_attempts, backoff),
        )
        self.batch.on_call = self.metrics.batch_size.observe
        self.serial.on_lock_wait = self.metrics.lock_wait.observe
        self.serial.on_ledger_hit = self.metrics.idempotent_hits.inc
        self.assigned = False
        self.http: InLoopServer | None = None
        self.tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self.limit = InFlightLimit(settings.max_in_flight)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            enable_idempotence=settings.kafka_idempotence,
            acks="all",
            linger_ms=5,
            client_id="sagebridge-answers",
        )
        self.publisher = OutcomePublisher(
            self.producer, default_reply_topic=settings.reply_topic, dlt_topic=settings.dlt_topic
        )
        self.consumer: AIOKafkaConsumer | None = None
        self._answering: set[asyncio.Task[None]] = set()
        self._answered = asyncio.Condition()
        self._commit_wanted = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        self.rebalance_listener = _Rebalance(self)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self.http = InLoopServer(
            health_app(self.metrics, self.readiness), "0.0.0.0", self.settings.http_port
        )
        await self.http.start()
        await self.producer.start()
        self._committer = asyncio.create_task(self._commit_loop(), name="sagebridge-committer")

    async def drain(self) -> None:
        """Stop fetching, deliver and answer everything consumed, commit. Runs before the
        consumer closes, so the group sees our final offsets."""
        if self.consumer is not None and self.consumer.assignment():
            self.consumer.pause(*self.consumer.assignment())
        while self.tracker.pending():
            await self.batch.drain()
            await self.serial.drain()
            await self._wait_answered(None, wait_s=None)
        await self._commit_now()

    async def close(self) -> None:
        if self._committer is not None:
            self._committer.cancel()
        await self.producer.stop()
        await self.connector.aclose()
        await self.locks.aclose()
        await self.redis.aclose()
        if self.http is not None:
            await self.http.stop()

    async def readiness(self) -> Readiness:
        """Ready when Redis answers, the serial lane is not paused and the group assigned us
        (an empty assignment counts: a spare replica is healthy, just idle)."""
        try:
            redis_ok = bool(await asyncio.wait_for(self.redis.ping(), 1.0))
        except Exception:
            redis_ok = False
        checks = {
            "kafka_assigned": self.assigned,
            "redis": redis_ok,
            "serial_lane": self.serial.redis_ok,
        }
        return Readiness(all(checks.values()), checks)

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

    # -- consuming -------------------------------------------------------------------------

    async def on_batch(self, message: KafkaMessage) -> None:
        """FastStream batch handler: admit every record, hand the good ones to their lane."""
        records = message.raw_message
        if not isinstance(records, tuple):
            records = (records,)
        if self.consumer is None:
            self.consumer = message.consumer
        await self.limit.acquire(len(records))
        refused: list[tuple[Ticket, Outcome]] = []
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            self.tracker.consumed(partition, record.offset)
            decision = self.intake.admit(record.value)
            if isinstance(decision, Refused):
                reply_topic = decision.reply_to or self.settings.reply_topic
                ticket = Ticket(
                    partition,
                    record.offset,
                    record.key,
                    record.value,
                    decision.subject,
                    reply_topic,
                )
                refused.append((ticket, decision.outcome))
                continue
            ticket = Ticket(
                partition,
                record.offset,
                record.key,
                record.value,
                decision.subject,
                decision.event.reply_to or self.settings.reply_topic,
            )
            self._dispatch(ticket, decision)
        if refused:
            self._on_outcomes(refused)

    def _dispatch(self, ticket: Ticket, admitted: Admitted) -> None:
        route, event = admitted.route, admitted.event
        delivery = Delivery(
            ticket,
            admitted.tenant,
            route.endpoint,
            event.data,
            identity=admitted.identity,
            event_id=event.event_id,
        )
        lane = self.batch if route.lane is Lane.BATCH else self.serial
        lane.submit(delivery)

    # -- answering -------------------------------------------------------------------------

    def _on_outcomes(self, results: Sequence[tuple[Ticket, Outcome]]) -> None:
        task = asyncio.create_task(self._answer(list(results)))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer(self, results: list[tuple[Ticket, Outcome]]) -> None:
        answers = [
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
        await self.publisher.publish(answers)
        events, dead_letters = self.metrics.events, self.metrics.dead_letters
        for ticket, outcome in results:
            self.tracker.answered(ticket.partition, ticket.offset)
            stage = str(outcome.stage) if outcome.stage else ""
            events.labels(
                ticket.subject.type or "", "SUCCESS" if outcome.ok else "ERROR", stage
            ).inc()
            if not outcome.ok:
                dead_letters.labels(stage).inc()
            _log_outcome(ticket, outcome)
        await self.limit.release(len(results))
        self.metrics.in_flight.set(self.limit.open)
        self.metrics.serial_paused.set(0 if self.serial.redis_ok else 1)
        async with self._answered:
            self._answered.notify_all()
        self._commit_wanted.set()

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

    # -- committing ------------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        while True:
            await self._commit_wanted.wait()
            self._commit_wanted.clear()
            await self._commit_now()

    async def _commit_now(self, only: set[TopicPartition] | None = None) -> None:
        consumer = self.consumer
        if consumer is None:
            return
        assigned = consumer.assignment()
        positions = {
            tp: position
            for tp, position in self.tracker.committable().items()
            if tp in assigned and (only is None or tp in only)
        }
        if not positions:
            return
        try:
            await consumer.commit(positions)
        except Exception as exc:  # rebalance in progress, coordinator moved: replay is safe
            log.warning(
                "offset commit failed; the records will be replayed",
                extra={"error": type(exc).__name__},
            )
            return
        self.tracker.mark_committed(positions)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before losing partitions, finish and commit what we took from them."""
        if not await self._wait_answered(revoked, wait_s=REVOKE_WAIT_S):
            log.warning(
                "partitions revoked with records still open; they will be replayed",
                extra={"open": self.tracker.pending(revoked)},
            )
        await self._commit_now(only=revoked)
        self.tracker.forget(revoked)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._bridge.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._bridge.assigned = True


def _log_outcome(ticket: Ticket, outcome: Outcome) -> None:
    fields: dict[str, Any] = {
        "event_id": ticket.subject.event_id,
        "type": ticket.subject.type,
        "outcome": "SUCCESS" if outcome.ok else "ERROR",
        "attempts": outcome.attempts,
    }
    if not outcome.ok:
        fields["stage"] = str(outcome.stage)
        fields["error"] = outcome.message
        log.info("event failed", extra=fields)
    else:
        log.debug("event delivered", extra=fields)


def create_app(settings: Settings, tenants: TenantDirectory) -> tuple[FastStream, Bridge]:
    """Build the FastStream application and the bridge behind it (not started)."""
    broker = KafkaBroker(settings.kafka_bootstrap, client_id="sagebridge", log_level=logging.DEBUG)
    bridge = Bridge(settings, tenants)
    subscriber = broker.subscriber(
        *settings.input_topics,
        group_id=settings.group_id,
        batch=True,
        max_records=POLL_MAX_RECORDS,
        batch_timeout_ms=max(settings.batch_wait_ms, 50),
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=max(100, settings.kafka_session_timeout_ms // 5),
        listener=bridge.rebalance_listener,
        title="crm-events",
        description="CRM record events (contact upserts, invoices, ...) to deliver to Sage.",
    )
    subscriber(bridge.on_batch)
    app = FastStream(broker, on_shutdown=[bridge.drain], after_shutdown=[bridge.close])
    app.on_startup(bridge.start)
    return app, bridge
