"""The periodic Redis check behind ``/readyz``.

Readiness asks whether Redis answers; the answer is kept from the last check, so however often
``/readyz`` is asked it costs no round trip of its own. While Redis answers, the same check
also reads whether Redis may evict keys (an eviction is a loss of data), runs the epoch watch
(a loss of Redis data is noticed even while no transactional record moves) and, once, reads
whether Redis is set up to keep the ledger through a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.errors import StateUnavailable
from service.ops.metrics import Metrics
from service.state.durability import Durability
from service.state.durability import check as check_durability
from service.state.eviction import EvictionWatch

log = logging.getLogger(__name__)

PING_TIMEOUT_S = 1.0


class RedisCheck:
    def __init__(
        self,
        redis: Redis,
        watch_epoch: Callable[[], Awaitable[None]],
        eviction: EvictionWatch,
        metrics: Metrics,
    ) -> None:
        self._redis = redis
        self._watch_epoch = watch_epoch
        self._eviction = eviction
        self._metrics = metrics
        self.durability: Durability | None = None
        """What Redis said of its persistence (``None`` until it answered)."""

    async def __call__(self) -> bool:
        """Whether Redis answers. Only the answer to PING decides: trouble in the epoch watch
        is the lanes' to report, and the next check tries again."""
        try:
            if not await asyncio.wait_for(self._redis.ping(), PING_TIMEOUT_S):
                return False
        except Exception:
            return False
        try:
            if self.durability is None:
                self.durability = await check_durability(self._redis)
                self._report(self.durability)
            await self._eviction.check()
            if self._eviction.latest is not None:
                self._metrics.redis_eviction.state(self._eviction.latest.case)
            await self._watch_epoch()
        except (RedisError, StateUnavailable):
            pass
        except Exception:
            log.exception("Redis epoch check failed")
        return True

    def _report(self, found: Durability) -> None:
        self._metrics.ledger_durable.set(1 if found.durable else 0)
        if found.durable:
            log.info("ledger durable", extra=found.as_dict())
        else:
            log.warning("ledger NOT durable: " + "; ".join(found.problems()), extra=found.as_dict())
