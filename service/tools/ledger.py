"""``sagebridge ledger show`` and ``ledger resolve``: the operator's side of ``unknown_outcome``.

A transactional call whose answer was lost leaves an intent in the ledger
(:mod:`service.state.ledger`), and every replay of that event is answered ``unknown_outcome``
again: nothing sagebridge can see says whether Sage stored it. A person checks Sage and gives
the verdict: ``--delivered`` turns the intent into a delivery (a replay is answered SUCCESS
without a call), ``--not-delivered`` clears it (a replay sends the record). Anything but an
intent is refused, so a verdict never overwrites what the Cloud Connector itself answered.

``--not-delivered`` is also refused while the record's last call may still land: the Cloud
Connector finishes a request after its client gave up, for up to ``SETTLE_AFTER_UNKNOWN_S``. A
person who checks Sage right after the alert could otherwise see nothing yet, clear the intent,
replay, and have the invoice stored twice. The serial lane records in the entry when each of
the record's calls began (the intent's first, then each retry or split part), so the guard
counts from the last one. An intent without that record (written by an earlier release) is
timed from when it was written, just before the first attempt: retries follow only answers
proving nothing was processed, so its last attempt began within :func:`attempts_window_s` of
it. ``--force`` overrides the guard.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TextIO

from service.config import Settings
from service.errors import ToolError, VerdictRefused
from service.state.client import connect as connect_redis
from service.state.epoch import Epoch
from service.state.ledger import Ledger, StoredEntry
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
    verdict = ""
    if entry.state == "in_doubt":
        accepted = not_delivered_accepted_from(settings, entry)
        verdict = f", --not-delivered accepted from {iso(accepted)}"
    out.write(
        f"{event_id} ({who}): {entry.state}, {attempts}, "
        f"written {iso(min(written, now))}, kept until {iso(expires)}{verdict}\n"
    )
    return 0


BACKOFF_CAP_S = 30.0
"""The retry loop's longest single backoff (:class:`service.lanes.retry.Backoff`)."""


def attempts_window_s(settings: Settings) -> float:
    """The longest from a record's intent to the start of its last attempt: every earlier
    attempt taking its whole timeout, each followed by its longest backoff."""
    base_s = settings.retry_backoff_ms / 1000
    backoffs = sum(
        min(BACKOFF_CAP_S, base_s * 2.0 ** (n - 1)) for n in range(1, settings.max_attempts)
    )
    return (settings.max_attempts - 1) * settings.http_timeout_s + backoffs


def not_delivered_accepted_from(settings: Settings, entry: StoredEntry) -> datetime:
    """When ``--not-delivered`` becomes safe for this intent: its last attempt's timeout, then
    the settle period, after that attempt began — as recorded, or else the latest moment it
    can have begun. An intent written before intents kept their time is timed from its last
    write (its expiry less retention)."""
    after_last_attempt = timedelta(
        seconds=settings.http_timeout_s + settings.settle_after_unknown_s
    )
    if entry.last_attempt_at is not None:
        return datetime.fromtimestamp(entry.last_attempt_at, UTC) + after_last_attempt
    if entry.attempted_at is not None:
        written = datetime.fromtimestamp(entry.attempted_at, UTC)
    else:
        written = datetime.now(UTC) + timedelta(
            seconds=entry.expires_in_s - settings.idempotency_retention_s
        )
    return written + timedelta(seconds=attempts_window_s(settings)) + after_last_attempt


async def resolve(
    settings: Settings,
    event_id: str,
    tenant: TenantKey | None,
    *,
    delivered: bool,
    force: bool = False,
    out: TextIO | None = None,
) -> int:
    """Record the operator's verdict on an intent; :class:`VerdictRefused` for anything else,
    and for ``--not-delivered`` while the last call may still land (unless ``force``);
    :class:`ToolError` when Redis cannot be reached."""
    who = tenant_or_default(settings, tenant, "ledger resolve")
    out = out or sys.stdout
    async with _ledger(settings, "ledger resolve") as ledger:
        entry = await ledger.look(who, event_id)
        if not delivered and not force and entry is not None and entry.state == "in_doubt":
            accepted = not_delivered_accepted_from(settings, entry)
            if datetime.now(UTC) < accepted:
                raise VerdictRefused(
                    f"ledger resolve: refused: {event_id} ({who}) may still be stored by its "
                    f"last call (the Cloud Connector finishes calls its client gave up); "
                    f"--not-delivered is accepted from {iso(accepted)}: check Sage again "
                    "then, or add --force",
                    accepted,
                )
        found = await ledger.resolve(who, event_id, delivered=delivered)
    if found == "delivered":
        raise VerdictRefused(
            f"ledger resolve: {event_id} ({who}) is already delivered (the Cloud Connector "
            "answered SUCCESS); nothing to resolve"
        )
    if found is None:
        raise VerdictRefused(
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
