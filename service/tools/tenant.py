"""``sagebridge tenant pause | resume | status``: stop calling one Sage company, and start again.

For Sage maintenance or a month-end close: every replica stops calling the tenant's Cloud
Connector within a second (calls already in flight finish), its records wait without using
retries or becoming dead letters, and other tenants flow (see :mod:`service.lanes.pause`). The
pause is kept in Redis (:mod:`service.state.pauses`), so it survives restarts until resumed.
"""

from __future__ import annotations

from typing import TextIO

from service.config import Settings
from service.errors import StateUnavailable
from service.state.client import connect
from service.state.pauses import PauseStore
from service.tenants import TenantDirectory, TenantKey

REDIS_TIMEOUT_S = 5.0


async def tenant_command(
    settings: Settings, action: str, tenant: TenantKey | None, out: TextIO, err: TextIO
) -> int:
    """Run ``action`` (``pause``, ``resume`` or ``status``); the exit code."""
    if action == "pause" and tenant is not None:
        known = TenantDirectory.from_settings(settings).tenants
        if tenant not in known:
            print(
                f"sagebridge tenant: {tenant} is not a configured tenant "
                f"(configured: {', '.join(sorted(map(str, known))) or 'none'})",
                file=err,
            )
            return 2
    redis = connect(
        settings.redis_url,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
    )
    store = PauseStore(redis, settings.redis_prefix)
    try:
        if action == "pause" and tenant is not None:
            _paused(tenant, await store.pause(tenant), out)
        elif action == "resume" and tenant is not None:
            _resumed(tenant, await store.resume(tenant), out)
        else:
            _status(await store.paused(), out)
    except StateUnavailable as exc:
        print(
            f"sagebridge tenant: Redis unreachable (SAGEBRIDGE_REDIS_URL): {type(exc).__name__}",
            file=err,
        )
        return 2
    finally:
        await redis.aclose()
    return 0


def _paused(tenant: TenantKey, newly: bool, out: TextIO) -> None:
    if newly:
        print(
            f"paused {tenant}: every replica stops calling its Cloud Connector within a second; "
            f"its records wait until 'sagebridge tenant resume {tenant}'",
            file=out,
        )
    else:
        print(f"{tenant} was already paused", file=out)


def _resumed(tenant: TenantKey, was_paused: bool, out: TextIO) -> None:
    if was_paused:
        print(f"resumed {tenant}: its waiting records flow again within a second", file=out)
    else:
        print(f"{tenant} was not paused", file=out)


def _status(paused: dict[TenantKey, str], out: TextIO) -> None:
    if not paused:
        print("no tenant is paused", file=out)
    for tenant, since in sorted(paused.items()):
        print(f"{tenant} paused since {since}", file=out)
