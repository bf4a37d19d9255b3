"""The periodic watchers of Redis: has it lost its data (the epoch), may it evict keys, does it
answer and keep the ledger durable, which tenants are paused. Their latest results are what
``/readyz`` reports."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from service.config import Settings
from service.kafka.consumer import GroupConsumer
from service.kafka.epoch_watch import EpochWatch
from service.lanes.pause import PauseGate
from service.offsets.log_ends import LogEnds
from service.ops.health import PeriodicCheck
from service.ops.metrics import Metrics
from service.ops.redis_check import RedisCheck
from service.state.eviction import EvictionWatch
from service.wiring.state import StateParts

PAUSE_READ_INTERVAL_S = 0.5
"""How often each replica reads the paused tenants: a pause takes effect within a second."""


@dataclass(frozen=True, slots=True)
class Watchers:
    """The watchers, and the periodic checks that run them."""

    epoch: EpochWatch
    eviction: EvictionWatch
    redis_check: RedisCheck
    redis_answers: PeriodicCheck
    """Runs :attr:`redis_check` (the epoch and eviction among it) every second."""
    pause_reads: PeriodicCheck
    """Reads the paused tenants into the pause gate."""


def build_watchers(
    settings: Settings,
    state: StateParts,
    consumer: GroupConsumer,
    log_ends: LogEnds,
    pauses: PauseGate,
    metrics: Metrics,
) -> Watchers:
    """Watchers of ``state``'s Redis; the epoch watch asks Kafka (``consumer``'s group,
    ``log_ends``) what a loss of Redis data means for the input topics."""
    epoch = EpochWatch(state.epoch, consumer, log_ends, settings.input_topics)
    eviction = EvictionWatch(state.redis, state.epoch, allow_eviction=settings.redis_allow_eviction)
    redis_check = RedisCheck(state.redis, epoch.check, eviction, metrics)
    pause_reads = PeriodicCheck(
        functools.partial(pauses.refresh, state.pauses.paused), PAUSE_READ_INTERVAL_S
    )
    return Watchers(epoch, eviction, redis_check, PeriodicCheck(redis_check), pause_reads)
