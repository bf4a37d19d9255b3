"""``sagebridge ledger show`` and ``ledger resolve``: the operator's side of ``unknown_outcome``.

A transactional call whose answer was lost leaves an intent in the ledger
(:mod:`service.state.ledger`), and every replay of that event is answered ``unknown_outcome``
again: nothing sagebridge can see says whether Sage stored it. A person checks Sage and gives
the verdict: ``--delivered`` turns the intent into a delivery (a replay is answered SUCCESS
without a call), ``--not-delivered`` clears it (a replay sends the record). Anything but an
intent is refused, so a verdict never overwrites what the Cloud Connector itself answered.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TextIO

from service.config import Settings
from service.errors import ToolError
from service.state.client import connect as connect_redis
from service.state.epoch import Epoch
from service.state.ledger import Ledger
from service.tenants import TenantKey
from service.tools.dead_letters import iso
from service.tools.reach import unreachable


def tenant_or_default(settings: Settings, tenant: TenantKey | None, command: str) -> TenantKey:
    """``--tenant``, or the default tenant when it is not given (as for events naming none)."""
    if tenant is not None:
        return tenant
    if settings.customer and settings.company:
        return TenantKey(settings.customer, settings.company)
    raise ToolError(
        f"{command}: no --tenant given and no default tenant configured "
        "(SAGEBRIDGE_CUSTOMER, SAGEBRIDGE_COMPANY)"
    )


@asynccontextmanager
async def _ledger(settings: Settings, command: str) -> AsyncIterator[Ledger]:
    redis = connect_redis(settings.redis_url, socket_timeout=5.0, socket_connect_timeout=2.0)
    # The epoch is only consulted by the lanes' guarded begin, which these commands never run.
    epoch = Epoch(redis, settings.redis_prefix, quarantine_s=1.0)
    try:
        async with unreachable(command, settings):
            yield Ledger(redis, settings.redis_prefix, settings.idempotency_retention_s, epoch)
    finally:
        await redis.aclose()


async def show(
    settings: Settings, event_id: str, tenant: TenantKey | None, out: TextIO | None = None
) -> int:
    """One line: the entry's state, attempts and when it was last written."""
    who = tenant_or_default(settings, tenant, "ledger show")
    out = out or sys.stdout
    async with _ledger(settings, "ledger show") as ledger:
        entry = await ledger.look(who, event_id)
    if entry is None:
        out.write(f"{event_id} ({who}): none — the ledger does not know it\n")
        return 0
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=entry.expires_in_s)
    written = expires - timedelta(seconds=ledger.retention_s)
    attempts = (
        "attempts not counted in the ledger (see the dead letter's x-attempts)"
        if entry.attempts is None
        else f"{entry.attempts} attempt(s)"
    )
    out.write(
        f"{event_id} ({who}): {entry.state}, {attempts}, "
        f"written {iso(min(written, now))}, kept until {iso(expires)}\n"
    )
    return 0


async def resolve(
    settings: Settings,
    event_id: str,
    tenant: TenantKey | None,
    *,
    delivered: bool,
    out: TextIO | None = None,
) -> int:
    """Record the operator's verdict on an intent; :class:`ToolError` for anything else."""
    who = tenant_or_default(settings, tenant, "ledger resolve")
    out = out or sys.stdout
    async with _ledger(settings, "ledger resolve") as ledger:
        found = await ledger.resolve(who, event_id, delivered=delivered)
    if found == "delivered":
        raise ToolError(
            f"ledger resolve: {event_id} ({who}) is already delivered (the Cloud Connector "
            "answered SUCCESS); nothing to resolve"
        )
    if found is None:
        raise ToolError(
            f"ledger resolve: the ledger does not know {event_id} ({who}): never sent, "
            "already resolved --not-delivered, or expired; nothing to resolve"
        )
    if delivered:
        out.write(
            f"{event_id} ({who}): recorded as delivered; a replay is answered SUCCESS "
            "without a call\n"
        )
    else:
        out.write(f"{event_id} ({who}): intent cleared; a replay sends it\n")
    return 0
