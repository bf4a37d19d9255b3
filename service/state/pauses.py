"""Paused tenants in Redis: one hash, ``<prefix>:paused``, shared by every replica.

Each field is a tenant (``customer:company``, both parts escaped as in :mod:`service.state.keys`
so a ``:`` in either cannot make two tenants one field); its value is when it was paused (ISO
8601, UTC). The hash has no expiry: a pause outlives restarts of every replica and lasts until
someone resumes it. It does not outlive a loss of Redis's data (a restart without persistence),
like the ledger; docs/operating.md ("Pause a tenant") says so.
"""

from __future__ import annotations

from datetime import UTC, datetime

from redis.asyncio import Redis

from service.state.keys import escape, key, unescape
from service.state.unavailable import speaks_state
from service.tenants import TenantKey


def _field(tenant: TenantKey) -> str:
    return f"{escape(tenant.customer)}:{escape(tenant.company)}"


def _tenant(field: bytes | str) -> TenantKey:
    text = field.decode() if isinstance(field, bytes) else field
    customer, _, company = text.partition(":")
    return TenantKey(unescape(customer), unescape(company))


class PauseStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._key = key(prefix, "paused")

    @speaks_state
    async def pause(self, tenant: TenantKey) -> bool:
        """Pause ``tenant``; ``False`` if it already was (its original time is kept)."""
        since = datetime.now(UTC).isoformat(timespec="seconds")
        return bool(await self._redis.hsetnx(self._key, _field(tenant), since))

    @speaks_state
    async def resume(self, tenant: TenantKey) -> bool:
        """Resume ``tenant``; ``False`` if it was not paused."""
        return bool(await self._redis.hdel(self._key, _field(tenant)))

    @speaks_state
    async def paused(self) -> dict[TenantKey, str]:
        """Every paused tenant and since when."""
        found = await self._redis.hgetall(self._key)
        return {
            _tenant(field): (since.decode() if isinstance(since, bytes) else str(since))
            for field, since in found.items()
        }
