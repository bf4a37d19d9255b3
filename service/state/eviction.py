"""May Redis evict keys? Read at start-up and once a second; an eviction seen is a loss of data.

The ledger's entries carry TTLs, so under ``volatile-*`` or ``allkeys-*`` (common defaults of
managed Redis) they are evicted under memory pressure, and a redelivered invoice looks new:
"never twice" breaks. Under ``volatile-*`` the epoch (no TTL) survives, so the epoch alone
would never notice (see :mod:`service.state.epoch`). Hence three cases:

* ``noeviction`` — what the ledger needs;
* an evicting policy — start-up is refused (:class:`RedisMayEvict`), unless the operator set
  ``SAGEBRIDGE_REDIS_ALLOW_EVICTION=true``;
* ``unknown`` — ``CONFIG`` is refused (managed Redis renames or disables it): the policy cannot
  be read, so start-up goes on.

In every case INFO's ``evicted_keys`` is watched: it cannot grow under ``noeviction``, so any
increase means keys are gone, which may be ledger entries or locks. That is handled exactly as
a declared loss of Redis data: a fresh epoch and a quarantine, which
every replica's lock and ledger scripts then see.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from service.errors import StartupError
from service.state.epoch import Epoch, EpochMoved, fresh_epoch

log = logging.getLogger(__name__)

EvictionCase = Literal["noeviction", "evicting", "unknown"]
"""What the policy read says: what the ledger needs, a policy that may evict, or unreadable."""


class RedisMayEvict(StartupError):
    """Redis's ``maxmemory-policy`` may evict ledger entries or locks."""

    what = "cannot start"


@dataclass(frozen=True, slots=True)
class EvictionState:
    """One reading: the policy (``None`` where ``CONFIG`` is refused) and ``evicted_keys``."""

    policy: str | None
    evicted_keys: int

    @property
    def case(self) -> EvictionCase:
        if self.policy is None:
            return "unknown"
        return "noeviction" if self.policy == "noeviction" else "evicting"

    def as_dict(self) -> dict[str, Any]:
        watch = "maxmemory-policy" if self.policy is not None else "evicted_keys"
        return {
            "case": self.case,
            "maxmemory_policy": self.policy,
            "evicted_keys": self.evicted_keys,
            "watched_by": watch,
        }


# KEYS: epoch, quarantine. ARGV: fresh epoch, quarantine ms. Keys were evicted: whatever epoch
# is there now no longer vouches for the ledger, so a fresh one is written with a quarantine
# (as EPOCH_LUA does for a missing epoch). A quarantine already running is never shortened.
_DECLARE_EVICTED = """
redis.call('SET', KEYS[1], ARGV[1])
local left = redis.call('PTTL', KEYS[2])
if left < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
end
return ARGV[1]
"""


class EvictionWatch:
    """Reads the policy and ``evicted_keys``; declares a loss when ``evicted_keys`` grows."""

    def __init__(self, redis: Redis, epoch: Epoch, *, allow_eviction: bool) -> None:
        self._redis = redis
        self._epoch = epoch
        self._allow = allow_eviction
        self._declare = redis.register_script(_DECLARE_EVICTED)
        self.latest: EvictionState | None = None
        """The last reading (``None`` until Redis answered one)."""

    @property
    def acceptable(self) -> bool:
        """Whether the last reading allows running: not an evicting policy the operator did
        not allow (``True`` before any reading: readiness has its own Redis check)."""
        return self._allow or self.latest is None or self.latest.case != "evicting"

    async def read(self) -> EvictionState:
        """Ask Redis (raises :class:`redis.RedisError` if it cannot be reached)."""
        try:
            found: Any = (await self._redis.config_get("maxmemory-policy")).get("maxmemory-policy")
            policy = found.decode() if isinstance(found, bytes) else found
        except ResponseError:  # CONFIG disabled or renamed
            policy = None
        stats = await self._redis.info("stats")
        return EvictionState(policy, int(stats.get("evicted_keys", 0)))

    async def refuse_unless_allowed(self) -> None:
        """At start-up: raise :class:`RedisMayEvict` with one line if the policy evicts and
        the operator did not allow it."""
        state = await self._take(await self.read())
        if state.case == "evicting" and not self._allow:
            raise RedisMayEvict(
                f"Redis maxmemory-policy is {state.policy}: it may evict ledger entries and "
                "tenant locks, and a record could be sent twice; set maxmemory-policy "
                "noeviction, or SAGEBRIDGE_REDIS_ALLOW_EVICTION=true to run anyway"
            )
        if state.case == "unknown":
            log.warning(
                "Redis refuses CONFIG: maxmemory-policy unknown; evicted_keys is watched and "
                "any eviction is treated as a loss of Redis data",
                extra=state.as_dict(),
            )

    async def check(self) -> None:
        """The periodic reading: log a policy change, declare a loss if keys were evicted."""
        await self._take(await self.read())

    async def _take(self, state: EvictionState) -> EvictionState:
        before, self.latest = self.latest, state
        if before is not None and before.policy != state.policy:
            level = logging.ERROR if not self.acceptable else logging.WARNING
            log.log(level, "Redis maxmemory-policy changed", extra=state.as_dict())
        if before is not None and state.evicted_keys > before.evicted_keys:
            await self._declare_evicted(state)
        return state

    async def _declare_evicted(self, state: EvictionState) -> None:
        """Keys were evicted: declare a loss of data (fresh epoch, quarantine) and adopt it,
        so the replay horizon is recorded as after any other declared loss."""
        epoch, fresh = self._epoch, fresh_epoch()
        await self._declare(
            keys=[epoch.epoch_key, epoch.quarantine_key], args=[fresh, epoch.quarantine_ms]
        )
        log.error("Redis evicted keys: treated as a loss of Redis data", extra=state.as_dict())
        epoch.adopt(EpochMoved(fresh, declared=True))
