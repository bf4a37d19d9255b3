"""The Prometheus metrics of one service instance.

They live in a registry per instance (not the global one), so several bridges in one process —
as in tests — never mix their counters. Nothing here sees a token: labels are event types,
outcomes, stages, endpoints, lanes and tenant names.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram
from prometheus_client.exposition import generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


UNKNOWN_TYPE = "unknown"
"""The ``type`` label of every event whose type has no route: a label value must not come from
the event, or each new string a producer sends would add a series for good."""


class Metrics:
    def __init__(self, known_types: Collection[str] = ()) -> None:
        self._known_types = frozenset(known_types)
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "sagebridge_events",
            "Events answered, by type and outcome.",
            ["type", "outcome", "stage"],
            registry=r,
        )
        self.dead_letters = Counter(
            "sagebridge_dead_letters", "Dead letters published.", ["stage"], registry=r
        )
        self.batch_size = Histogram(
            "sagebridge_batch_size",
            "Records per master-data call.",
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.connector_latency = Histogram(
            "sagebridge_connector_latency_seconds",
            "Cloud Connector call latency.",
            ["lane", "endpoint", "result"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.lock_wait = Histogram(
            "sagebridge_lock_wait_seconds",
            "Time waiting for a tenant lock per transactional call.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.idempotent_hits = Counter(
            "sagebridge_idempotent_hits", "Redelivered events answered from the ledger.", registry=r
        )
        self.in_flight = Gauge(
            "sagebridge_in_flight", "Consumed records not yet answered.", registry=r
        )
        self.in_flight_bytes = Gauge(
            "sagebridge_in_flight_bytes",
            "Value bytes of consumed records not yet answered.",
            registry=r,
        )
        self.breaker_open = Gauge(
            "sagebridge_breaker_open",
            "1 while a tenant's Cloud Connector circuit breaker is open.",
            ["customer", "company"],
            registry=r,
        )
        self.fetch_paused = Gauge(
            "sagebridge_fetch_paused",
            "1 while fetching is paused by the in-flight limit.",
            registry=r,
        )
        self.ledger_durable = Gauge(
            "sagebridge_ledger_durable",
            "1 if Redis keeps the ledger through a restart (appendonly yes, maxmemory-policy "
            "noeviction, no Cluster); 0 if not, or not known yet.",
            registry=r,
        )
        self.tenant_paused = Gauge(
            "sagebridge_tenant_paused",
            "1 while an operator has paused a tenant (sagebridge tenant pause).",
            ["customer", "company"],
            registry=r,
        )
        self.serial_busy = Gauge(
            "sagebridge_serial_busy_companies",
            "Companies with a serial-lane worker: records queued or in a call (an idle company "
            "has none).",
            registry=r,
        )
        self.serial_paused = Gauge(
            "sagebridge_serial_lane_paused",
            "1 while Redis is unreachable and the serial lane waits.",
            registry=r,
        )

        self.redis_eviction = Enum(
            "sagebridge_redis_eviction",
            "Redis maxmemory-policy: noeviction, evicting (allowed by "
            "SAGEBRIDGE_REDIS_ALLOW_EVICTION), or unknown (CONFIG refused: evicted_keys watched).",
            states=["noeviction", "evicting", "unknown"],
            registry=r,
        )

    def count_outcomes(self, counted: Mapping[tuple[str, bool, str], int]) -> None:
        """Add answered events, pre-counted per (type, ok, stage): one label lookup per kind
        of outcome in a batch, not one per event. A type without a route counts as
        :data:`UNKNOWN_TYPE`."""
        for (event_type, ok, stage), count in counted.items():
            label = event_type if event_type in self._known_types else UNKNOWN_TYPE
            self.events.labels(label, "SUCCESS" if ok else "ERROR", stage).inc(count)
            if not ok:
                self.dead_letters.labels(stage).inc(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
