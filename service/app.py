"""The composition root: every part of ``sagebridge run``, built once and handed to the parts
that use it, then started and stopped in order.

This is the one module that puts Kafka, HTTP and Redis together. What it builds reads as the
event's path (see the README's architecture section): the subscriber (:mod:`service.kafka`)
hands polls to the :class:`~service.bridge.Bridge`, which admits them (:mod:`service.intake`)
and passes them to a lane (:mod:`service.lanes`); lanes call the Connector
(:mod:`service.connector`) under Redis locks and the ledger (:mod:`service.state`) and report
outcomes to :class:`~service.bridge.Answering`, which publishes them (:mod:`service.answers`)
and moves the offsets (:mod:`service.offsets`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import TopicPartition
from faststream import FastStream
from redis.exceptions import RedisError

from service.answers.producer import ACK_TIMEOUT_S, reply_producer
from service.answers.publisher import OutcomePublisher
from service.bridge import Answering, Bridge, Consumed
from service.config import Settings
from service.connector.client import ConnectorClient, pool_size
from service.connector.lookup import already_in_sage
from service.connector.network import connector_network
from service.connector.results import CallResult
from service.errors import StartupError
from service.intake.admit import Intake
from service.intake.envelope import NO_SCHEMAS
from service.intake.image_step import ImageStep
from service.intake.routes import Lane, Route, RouteTable, load_route_table
from service.intake.topics import ReplyTopics
from service.kafka import subscriber
from service.kafka.consumer import GroupConsumer
from service.kafka.crash_guard import CrashLoopGuard
from service.kafka.epoch_watch import EpochWatch
from service.kafka.security import kafka_client_options
from service.kafka.startup import KafkaUnreachable, start_when_reachable
from service.lanes.batch import BatchPolicy
from service.lanes.breaker import Breakers
from service.lanes.master_data import MasterData
from service.lanes.pause import PauseGate
from service.lanes.retry import Backoff
from service.lanes.serial import ArrayRule, FencedPost, SerialLane, SerialPolicy
from service.offsets.committer import Committer
from service.offsets.flow import FlowControl
from service.offsets.log_ends import LogEnds
from service.offsets.tracker import OffsetTracker
from service.ops.health import PeriodicCheck, Readiness, health_app
from service.ops.http_server import InLoopServer
from service.ops.logs import OutcomeLog
from service.ops.metrics import Metrics
from service.ops.redis_check import RedisCheck
from service.ops.tenant_states import TenantStates
from service.ops.traces import RecordTrace, Tracing
from service.registry import RegistryClient, SchemaCache
from service.state.client import connect as connect_redis
from service.state.crash_marks import MarkStore, blocking_client
from service.state.epoch import Epoch
from service.state.eviction import EvictionWatch
from service.state.images import ImageStore
from service.state.ledger import Ledger
from service.state.locks import TenantLocks
from service.state.pauses import PauseStore
from service.tenants import Tenant, TenantDirectory, known_secrets

log = logging.getLogger(__name__)

PAUSE_READ_INTERVAL_S = 0.5
"""How often each replica reads the paused tenants: a pause takes effect within a second."""


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
        self.registry: RegistryClient | None = None
        schemas: SchemaCache | None = None
        if settings.schema_registry_url is not None:
            password = settings.schema_registry_password
            self.registry = RegistryClient(
                settings.schema_registry_url,
                user=settings.schema_registry_user,
                password=password.get_secret_value() if password is not None else None,
                timeout_s=settings.http_timeout_s,
            )
            schemas = SchemaCache(self.registry)
        intake = Intake(
            routes,
            tenants,
            settings.max_event_bytes,
            ReplyTopics.from_settings(settings),
            schemas.book if schemas is not None else NO_SCHEMAS,
            settings.max_record_ids,
        )
        self.metrics = Metrics(known_types=routes.routes)
        self.tracing = Tracing.from_environment() if tracing is None else tracing
        network = connector_network(
            settings.connector_url,
            ca_file=settings.connector_ca_file,
            client_cert=settings.connector_client_cert,
            client_key=settings.connector_client_key,
            environ=os.environ,
        )
        if network.proxy is not None or network.ssl_context is not None:
            log.info("Cloud Connector calls use %s", network.shown())
        self.connector = ConnectorClient(
            settings.connector_url,
            settings.http_timeout_s,
            max_connections=settings.connector_max_connections or pool_size(tenants.count),
            retry_after_max_s=settings.retry_after_max_s,
            network=network,
        )
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
        )
        ledger = Ledger(
            self.redis, settings.redis_prefix, settings.idempotency_retention_s, self.epoch
        )
        self.locks = TenantLocks(
            self.redis, settings.redis_prefix, settings.lock_ttl_ms / 1000, self.epoch
        )
        tenant_states = TenantStates(self.metrics)
        self.pauses = PauseGate(on_change=tenant_states.pause_changed)
        pause_store = PauseStore(self.redis, settings.redis_prefix)
        self.pause_reads = PeriodicCheck(
            functools.partial(self.pauses.refresh, pause_store.paused), PAUSE_READ_INTERVAL_S
        )
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
        self.watch = EpochWatch(self.epoch, self.consumer, self.log_ends, settings.input_topics)
        tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self.producer = reply_producer(settings)
        self.publisher = OutcomePublisher(
            self.producer,
            default_reply_topic=settings.reply_topic,
            dlt_topic=settings.dlt_topic,
            max_value_bytes=settings.max_event_bytes,
            ack_timeout_s=ACK_TIMEOUT_S,
        )
        self.committer = Committer(tracker, self.consumer)
        answering = Answering(
            self.publisher,
            tracker,
            FlowControl(settings.max_in_flight, settings.max_in_flight_bytes),
            self.consumer,
            self.committer,
            self.metrics,
            OutcomeLog(settings.log_level, secrets=known_secrets(settings, tenants)),
        )
        backoff = Backoff(settings.retry_backoff_ms / 1000)
        self.master_data: MasterData[Consumed] = MasterData(
            self._timed_post("batch"),
            BatchPolicy(
                settings.batch_max,
                settings.batch_wait_ms / 1000,
                settings.batch_concurrency,
                settings.max_attempts,
                backoff,
            ),
            self.breakers,
            ledger,
            self._lookup,
            answering.answer,
            on_dropped=answering.dropped,
            may_doubt=self.watch.may_doubt,
            doubtful=self._doubtful,
            on_ledger_hit=self.metrics.idempotent_hits.inc,
            on_call=self.metrics.batch_size.observe,
            trace_of=_trace_of,
            call_span=self.tracing.call_span,
        )
        self.serial: SerialLane[Consumed] = SerialLane(
            self._timed_post("serial"),
            answering.answer,
            self.locks,
            ledger,
            _serial_policy(settings, backoff),
            self.breakers,
            on_dropped=answering.dropped,
            doubtful=self._doubtful,
            on_lock_wait=self.metrics.lock_wait.observe,
            on_ledger_hit=self.metrics.idempotent_hits.inc,
            arrays=_array_rules(routes),
        )
        self.metrics.serial_paused.set_function(lambda: 0 if self.serial.redis_ok else 1)
        self.crash_guard = CrashLoopGuard(
            MarkStore(self.redis, blocking_client(settings.redis_url), settings.redis_prefix),
            settings.crash_loop_limit,
            register=tracker.consumed,
        )
        taking_in = wrap_intake(intake)
        images = ImageStore(self.redis, settings.redis_prefix, settings.image_ttl_s)
        self.bridge = Bridge(
            taking_in,
            settings.reply_topic,
            self.crash_guard,
            self.master_data,
            self.serial,
            answering,
            self.committer,
            self.watch,
            self.consumer,
            ImageStep(taking_in, images, settings.image_bound),
            drain_timeout_s=settings.drain_timeout_s,
            call_timeout_s=settings.http_timeout_s,
            tracing=self.tracing,
            schemas=schemas,
        )
        self.eviction = EvictionWatch(
            self.redis, self.epoch, allow_eviction=settings.redis_allow_eviction
        )
        self.redis_check = RedisCheck(self.redis, self.watch.check, self.eviction, self.metrics)
        self.redis_answers = PeriodicCheck(self.redis_check)
        self.http = InLoopServer(
            health_app(self.metrics, self.readiness), settings.http_host, settings.http_port
        )
        self._committing: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self.eviction.refuse_unless_allowed()
        except RedisError as exc:  # the periodic Redis check reads it once Redis answers
            log.warning("Redis maxmemory-policy not read at start-up", extra={"error": repr(exc)})
        except StartupError:
            await self.close()
            raise
        await self.redis_answers.start()
        await self.pause_reads.start()
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
        await self.watch.start()
        self._committing = asyncio.create_task(self.committer.run(), name="sagebridge-committer")

    async def drain(self) -> None:
        await self.bridge.drain()

    async def close(self) -> None:
        if self._committing is not None:
            self._committing.cancel()
        await self.watch.stop()
        await self.serial.close()
        await self.master_data.close()
        await self.log_ends.aclose()
        await self.producer.stop()
        await self.connector.aclose()
        if self.registry is not None:
            await self.registry.aclose()
        await self.locks.aclose()
        self.crash_guard.close()
        await self.redis_answers.stop()
        await self.pause_reads.stop()
        await self.redis.aclose()
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
            "redis": self.redis_answers.latest,
            "serial_lane": self.serial.redis_ok,
            "connector": not self.breakers.open_tenants(),
            "redis_eviction": self.eviction.acceptable,
        }
        durability = self.redis_check.durability
        ledger = durability.as_dict() if durability is not None else {"durable": None}
        paused = sorted(str(tenant) for tenant in self.pauses.tenants)
        eviction = self.eviction.latest
        notes = {
            "ledger": ledger,
            "paused": paused,
            "redis_eviction": eviction.as_dict() if eviction is not None else {"case": None},
        }
        return Readiness(all(checks.values()), checks, notes)

    async def _doubtful(self, ticket: Consumed) -> bool:
        return await self.watch.doubtful(ticket.partition, ticket.offset)

    def _timed_post(self, lane: str) -> FencedPost:
        return timed_post(self.connector, self.metrics, lane)

    async def _lookup(self, tenant: Tenant, route: Route, record: Mapping[str, Any]) -> bool:
        """Whether Sage already has ``record`` (a read), once the tenant is not paused."""
        await self.pauses.until_resumed(tenant.key)
        return await already_in_sage(self.connector.get, tenant, route, record)


def timed_post(connector: ConnectorClient, metrics: Metrics, lane: str) -> FencedPost:
    """The Connector's post, its latency observed per lane, endpoint and result."""
    latency = metrics.connector_latency

    async def post(
        tenant: Tenant, endpoint: str, payload: bytes, *, fence: int | None = None
    ) -> CallResult:
        started = time.perf_counter()
        result = await connector.post(tenant, endpoint, payload, fence=fence)
        latency.labels(lane, endpoint, type(result).__name__).observe(time.perf_counter() - started)
        return result

    return post


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
