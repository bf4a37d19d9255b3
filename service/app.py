"""The composition root: every part of ``sagebridge run``, built once and handed to the parts
that use it, then started and stopped in order.

This is the one module that puts Kafka, HTTP and Redis together. What it builds reads as the
event's path (see the README's architecture section): the subscriber (:mod:`service.kafka`)
hands polls to the :class:`~service.bridge.Bridge`, which admits them (:mod:`service.intake`)
and passes them to a lane (:mod:`service.lanes`); lanes call the Connector
(:mod:`service.connector`) under Redis locks and the ledger (:mod:`service.state`) and report
outcomes to :class:`~service.answering.Answering`, which publishes them (:mod:`service.answers`)
and moves the offsets (:mod:`service.offsets`).

Groups of parts that keep to one side — the Redis stores, the calls out over HTTP, Kafka's
answering side, the Redis watchers — are built by :mod:`service.wiring` and handed in here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

from faststream import FastStream
from redis.exceptions import RedisError

from service.answering import Consumed
from service.bridge import Bridge
from service.config import Settings
from service.connector.lookup import sighting
from service.errors import StartupError
from service.intake.admit import Intake
from service.intake.envelope import NO_SCHEMAS
from service.intake.image_step import ImageStep
from service.intake.routes import Lane, RouteTable, load_route_table
from service.intake.topics import ReplyTopics
from service.kafka import subscriber
from service.kafka.consumer import GroupConsumer
from service.kafka.crash_guard import CrashLoopGuard
from service.kafka.security import kafka_client_options
from service.kafka.startup import KafkaUnreachable, start_when_reachable
from service.lanes.batch import BatchPolicy
from service.lanes.breaker import Breakers
from service.lanes.master_data import MasterData
from service.lanes.pause import PauseGate
from service.lanes.retry import Backoff
from service.lanes.serial import ArrayRule, SerialLane, SerialPolicy
from service.lanes.serial.lookups import Lookups, lookup_rules
from service.offsets.log_ends import LogEnds
from service.ops.breaker_board import BreakerBoard, replica_name
from service.ops.health import Readiness, health_app
from service.ops.http_server import InLoopServer
from service.ops.metrics import Metrics
from service.ops.tenant_states import TenantStates
from service.ops.traces import RecordTrace, Tracing
from service.registry import SchemaCache
from service.state.carried import CarriedCalls
from service.tenants import TenantDirectory, known_secrets
from service.wiring.answering import build_answering
from service.wiring.calls_out import (
    connector_client,
    paused_lookup,
    paused_read,
    registry_client,
    timed_post,
)
from service.wiring.state import build_state
from service.wiring.watchers import build_watchers

log = logging.getLogger(__name__)


class Service:
    """Everything ``sagebridge run`` starts and stops, and what ``/readyz`` reports."""

    def __init__(
        self,
        settings: Settings,
        tenants: TenantDirectory,
        tracing: Tracing | None = None,
        wrap_intake: Callable[[Intake], Intake] = lambda intake: intake,
    ) -> None:
        """``tracing`` defaults to what the standard ``OTEL_*`` variables ask for (off when
        none is set); it is set up before the Connector client, whose calls it instruments.
        ``wrap_intake``: where a test hook is handed in (the command line passes the ones of
        :mod:`service.dev.testhooks`, each off unless its variable is set)."""
        self.settings = settings
        routes = load_route_table(settings.contracts_dir)
        self.registry = registry_client(settings)
        schemas = SchemaCache(self.registry) if self.registry is not None else None
        intake = wrap_intake(
            Intake(
                routes,
                tenants,
                settings.max_event_bytes,
                ReplyTopics.from_settings(settings),
                schemas.book if schemas is not None else NO_SCHEMAS,
                settings.max_record_ids,
            )
        )
        self.metrics = Metrics(known_types=routes.routes)
        self.tracing = Tracing.from_environment() if tracing is None else tracing
        self.connector = connector_client(settings, tenants.count)
        self.state = build_state(settings)
        self.breaker_board = BreakerBoard(self.state.breakers, replica_name())
        tenant_states = TenantStates(self.metrics, self.breaker_board)
        self.pauses = PauseGate(on_change=tenant_states.pause_changed)
        # The breaker must open before any record can use up its retry budget on an outage:
        # consecutive failures reach the threshold no later than one record's attempts do.
        self.breakers = Breakers(
            min(settings.breaker_threshold, settings.max_attempts),
            settings.breaker_cooldown_ms / 1000,
            on_change=tenant_states.breaker_changed,
            pauses=self.pauses,
        )
        self.consumer = GroupConsumer()
        self.log_ends = LogEnds(kafka_client_options(settings))
        self.watchers = build_watchers(
            settings, self.state, self.consumer, self.log_ends, self.pauses, self.metrics
        )
        side = build_answering(
            settings, self.consumer, self.metrics, known_secrets(settings, tenants)
        )
        self.producer, self.publisher = side.producer, side.publisher
        self.committer = side.committer
        backoff = Backoff(settings.retry_backoff_ms / 1000)
        read = paused_read(self.connector, self.pauses)
        self.master_data: MasterData[Consumed] = MasterData(
            timed_post(self.connector, self.metrics, "batch"),
            BatchPolicy(
                settings.batch_max,
                settings.batch_wait_ms / 1000,
                settings.batch_concurrency,
                settings.max_attempts,
                backoff,
            ),
            self.breakers,
            self.state.ledger,
            paused_lookup(read),
            side.answering.answer,
            on_dropped=side.answering.dropped,
            may_doubt=self.watchers.epoch.may_doubt,
            doubtful=self._doubtful,
            on_ledger_hit=self.metrics.idempotent_hits.inc,
            on_call=self.metrics.batch_size.observe,
            trace_of=_trace_of,
            call_span=self.tracing.call_span,
        )
        self.serial: SerialLane[Consumed] = SerialLane(
            timed_post(self.connector, self.metrics, "serial"),
            side.answering.answer,
            self.state.locks,
            self.state.ledger,
            _serial_policy(settings, backoff),
            self.breakers,
            on_dropped=side.answering.dropped,
            doubtful=self._doubtful,
            on_lock_wait=self.metrics.lock_wait.observe,
            on_ledger_hit=self.metrics.idempotent_hits.inc,
            arrays=_array_rules(routes),
            lookups=Lookups(
                lookup_rules(routes),
                functools.partial(sighting, read),
                CarriedCalls(self.state.redis, settings.redis_prefix),
            ),
        )
        self.metrics.serial_paused.set_function(lambda: 0 if self.serial.redis_ok else 1)
        self.metrics.serial_busy.set_function(lambda: self.serial.busy_companies)
        self.crash_guard = CrashLoopGuard(
            self.state.marks, settings.crash_loop_limit, register=side.tracker.consumed
        )
        self.bridge = Bridge(
            intake,
            settings.reply_topic,
            self.crash_guard,
            self.master_data,
            self.serial,
            side.answering,
            self.committer,
            self.watchers.epoch,
            self.consumer,
            ImageStep(intake, self.state.images, settings.image_bound),
            drain_timeout_s=settings.drain_timeout_s,
            call_timeout_s=settings.http_timeout_s,
            tracing=self.tracing,
            schemas=schemas,
        )
        self.http = InLoopServer(
            health_app(self.metrics, self.readiness), settings.http_host, settings.http_port
        )
        self._committing: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self.watchers.eviction.refuse_unless_allowed()
        except RedisError as exc:  # the periodic Redis check reads it once Redis answers
            log.warning("Redis maxmemory-policy not read at start-up", extra={"error": repr(exc)})
        except StartupError:
            await self.close()
            raise
        await self.watchers.redis_answers.start()
        await self.watchers.pause_reads.start()
        await self.breaker_board.start()
        await self.http.start()
        try:
            await start_when_reachable(
                self.producer.start,
                bootstrap=self.settings.kafka_bootstrap,
                wait_s=self.settings.startup_wait_s,
            )
        except KafkaUnreachable:
            await self.close()
            raise
        await self.watchers.epoch.start()
        self._committing = asyncio.create_task(self.committer.run(), name="sagebridge-committer")

    async def drain(self) -> None:
        await self.bridge.drain()

    async def close(self) -> None:
        if self._committing is not None:
            self._committing.cancel()
        await self.watchers.epoch.stop()
        await self.serial.close()
        await self.master_data.close()
        await self.log_ends.aclose()
        await self.producer.stop()
        await self.connector.aclose()
        if self.registry is not None:
            await self.registry.aclose()
        await self.state.locks.aclose()
        self.crash_guard.close()
        await self.watchers.redis_answers.stop()
        await self.watchers.pause_reads.stop()
        await self.breaker_board.stop()
        await self.state.redis.aclose()
        await self.http.stop()
        self.tracing.close()

    async def readiness(self) -> Readiness:
        """Ready when Redis answers (as of its last periodic check), the serial lane is not
        paused, no tenant's Connector breaker is open and the group assigned us (an empty
        assignment counts: a spare replica is healthy, just idle). A tenant an operator paused
        is listed but leaves the replica ready: the pause is intended, and traffic for the
        other tenants still needs this replica."""
        checks = {
            "kafka_assigned": self.bridge.assigned,
            "redis": self.watchers.redis_answers.latest,
            "serial_lane": self.serial.redis_ok,
            "connector": not self.breakers.open_tenants(),
            "redis_eviction": self.watchers.eviction.acceptable,
        }
        durability = self.watchers.redis_check.durability
        ledger = durability.as_dict() if durability is not None else {"durable": None}
        paused = sorted(str(tenant) for tenant in self.pauses.tenants)
        eviction = self.watchers.eviction.latest
        notes = {
            "ledger": ledger,
            "paused": paused,
            "redis_eviction": eviction.as_dict() if eviction is not None else {"case": None},
        }
        return Readiness(all(checks.values()), checks, notes)

    async def _doubtful(self, ticket: Consumed) -> bool:
        return await self.watchers.epoch.doubtful(ticket.partition, ticket.offset)


def _serial_policy(settings: Settings, backoff: Backoff) -> SerialPolicy:
    return SerialPolicy(
        settings.lock_wait_ms / 1000,
        settings.max_attempts,
        backoff,
        call_timeout_s=settings.http_timeout_s,
        settle_s=settings.settle_after_unknown_s,
    )


def _array_rules(routes: RouteTable) -> dict[str, ArrayRule]:
    """The array rule of each serial route (``batch_max``, ``atomic_arrays``)."""
    return {
        route.endpoint: ArrayRule(route.batch_max, route.atomic_arrays)
        for route in routes.routes.values()
        if route.lane is Lane.SERIAL
    }


def _trace_of(ticket: Consumed) -> RecordTrace | None:
    return ticket.trace


def create_app(
    settings: Settings,
    tenants: TenantDirectory,
    *,
    tracing: Tracing | None = None,
    wrap_intake: Callable[[Intake], Intake] = lambda intake: intake,
) -> tuple[FastStream, Service]:
    """Build the FastStream application and the service behind it (not started); call inside
    a running event loop (aiokafka clients bind to it). ``tracing``, ``wrap_intake``: see
    :class:`Service`."""
    broker = subscriber.make_broker(settings)
    service = Service(settings, tenants, tracing, wrap_intake)
    subscriber.declare(broker, settings, service.consumer, service.bridge, service.bridge.on_poll)
    app = FastStream(
        broker,
        logger=subscriber.FASTSTREAM_LOG,
        on_shutdown=[service.drain],
        after_shutdown=[service.close],
    )
    app.on_startup(service.start)
    return app, service
