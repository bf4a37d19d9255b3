"""Is the ledger's Redis durable? Checked at start-up; shown in ``/readyz``, ``/metrics``, the log.

The ledger and the tenant locks are only as safe as Redis keeps them. A Redis without an
append-only file loses everything on a restart; one that may evict keys under memory pressure
(any ``maxmemory-policy`` but ``noeviction``) can drop a ledger entry or a lock at any time; a
Redis Cluster splits the multi-key scripts' keys over slots and refuses them. sagebridge still
runs on such a Redis — a loss of data is detected (:mod:`service.state.epoch`) — but an operator
must see that the ledger is not durable before it matters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from service.state.unavailable import speaks_state


@dataclass(frozen=True, slots=True)
class Durability:
    """What Redis reported; ``None`` where it would not say (managed services often disable
    ``CONFIG``)."""

    appendonly: str | None
    maxmemory_policy: str | None
    cluster: bool

    @property
    def durable(self) -> bool:
        return (
            self.appendonly == "yes" and self.maxmemory_policy == "noeviction" and not self.cluster
        )

    def problems(self) -> list[str]:
        """Why the ledger is not durable, one phrase each (empty when it is)."""
        found = []
        if self.appendonly != "yes":
            found.append(f"appendonly is {self.appendonly or 'unknown'} (a restart loses the data)")
        if self.maxmemory_policy != "noeviction":
            found.append(
                f"maxmemory-policy is {self.maxmemory_policy or 'unknown'} (keys can be evicted)"
            )
        if self.cluster:
            found.append("Redis Cluster is not supported (the ledger's scripts span slots)")
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "durable": self.durable,
            "appendonly": self.appendonly,
            "maxmemory_policy": self.maxmemory_policy,
            "cluster": self.cluster,
        }


@speaks_state
async def check(redis: Redis) -> Durability:
    """Ask Redis (raises :class:`~service.errors.StateUnavailable` if it cannot be reached)."""
    appendonly = await _config(redis, "appendonly")
    policy = await _config(redis, "maxmemory-policy")
    try:
        cluster = bool((await redis.info("cluster")).get("cluster_enabled"))
    except ResponseError:
        cluster = False
    return Durability(appendonly, policy, cluster)


async def _config(redis: Redis, name: str) -> str | None:
    try:
        found = await redis.config_get(name)
    except ResponseError:  # CONFIG disabled or renamed
        return None
    value: Any = found.get(name)
    if isinstance(value, bytes):
        return value.decode()
    return None if value is None else str(value)
