"""What the service keeps in Redis — the epoch, the ledger, the tenant locks, the pauses, the
record images, the crash marks and the breaker reports — built once on one client."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from service.config import Settings
from service.state.breaker_reports import BreakerReports
from service.state.client import connect as connect_redis
from service.state.crash_marks import MarkStore, blocking_client
from service.state.epoch import Epoch
from service.state.images import ImageStore
from service.state.ledger import Ledger
from service.state.locks import TenantLocks
from service.state.pauses import PauseStore

REDIS_TIMEOUT_S = 2.0
"""Socket and connect timeout of the data plane's Redis client: a Redis that does not answer
within it counts as down (the serial lane pauses, readiness says so)."""


@dataclass(frozen=True, slots=True)
class StateParts:
    """The Redis client and every store on it."""

    redis: Redis
    epoch: Epoch
    ledger: Ledger
    locks: TenantLocks
    pauses: PauseStore
    images: ImageStore
    marks: MarkStore
    breakers: BreakerReports


def build_state(settings: Settings) -> StateParts:
    """Every store, on one client to ``SAGEBRIDGE_REDIS_URL`` under ``SAGEBRIDGE_REDIS_PREFIX``."""
    prefix = settings.redis_prefix
    redis = connect_redis(
        settings.redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )
    # After a loss of Redis data, any call begun under the old data has ended at the
    # Connector within one lease (a call starts only under a lease that outlasts it) plus
    # the settle period (how long the Connector may go on after its client gave up).
    epoch = Epoch(
        redis, prefix, quarantine_s=settings.lock_ttl_ms / 1000 + settings.settle_after_unknown_s
    )
    return StateParts(
        redis,
        epoch,
        Ledger(redis, prefix, settings.idempotency_retention_s, epoch),
        TenantLocks(redis, prefix, settings.lock_ttl_ms / 1000, epoch),
        PauseStore(redis, prefix),
        ImageStore(redis, prefix, settings.image_ttl_s, wait_for_epoch=epoch.ready),
        MarkStore(redis, blocking_client(settings.redis_url), prefix),
        BreakerReports(redis, prefix),
    )
