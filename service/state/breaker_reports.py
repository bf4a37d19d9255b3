"""Each replica's circuit breakers, reported in Redis for the operators' console.

A breaker lives in one replica's memory (:mod:`service.lanes.breaker`): replicas do not share
it, and each opens on its own failures. So that a person can see a tenant's outage on one page,
every replica keeps its report in one hash, ``<prefix>:breakers``, under its own field (its
name), valued as JSON: when it wrote (``seen``), until when the report holds (``until``), and its
breakers that are not closed — per tenant (``customer:company``, each part escaped as in
:mod:`service.state.keys`) the state (``open`` or ``half_open``) and when it left ``closed``.

A replica rewrites its field when a breaker changes and on a slow heartbeat, each time moving
``until`` a few heartbeats on; a report past its ``until`` is a replica that died, ignored and
removed by the next reader, and one that stops cleanly removes its own. One hash, not a key per
replica, so a reader asks Redis one ``HGETALL`` instead of scanning a keyspace the ledger fills
with millions of keys; the hash itself expires with the last report written. Closed breakers
and idle tenants cost nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from redis.asyncio import Redis

from service.state.keys import escape, key, unescape
from service.state.unavailable import speaks_state
from service.tenants import TenantKey


@dataclass(frozen=True, slots=True)
class OpenBreaker:
    """A breaker that is not closed: ``open`` (no calls) or ``half_open`` (one probe)."""

    state: str
    since: datetime
    """When it left ``closed`` (a failed probe re-opens it without moving this)."""


@dataclass(frozen=True, slots=True)
class ReplicaReport:
    """What one replica last reported."""

    replica: str
    seen: datetime
    open: Mapping[TenantKey, OpenBreaker]


@dataclass(frozen=True, slots=True)
class TenantBreaker:
    """One tenant's breakers across the reporting replicas."""

    open_on: int
    replicas: int
    since: datetime | None
    """When the earliest of its open breakers opened; ``None`` when none is open."""


def _field(tenant: TenantKey) -> str:
    return f"{escape(tenant.customer)}:{escape(tenant.company)}"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _report(replica: str, value: bytes | str, now: datetime) -> ReplicaReport | None:
    """A field as read back; ``None`` for one that has run out or cannot be read."""
    try:
        found = orjson.loads(value)
        seen = datetime.fromisoformat(found["seen"])
        if datetime.fromisoformat(found["until"]) < now:
            return None
        open_ = {
            _tenant(name): OpenBreaker(state, datetime.fromisoformat(since))
            for name, (state, since) in found["open"].items()
        }
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    return ReplicaReport(replica, seen, open_)


def _tenant(name: str) -> TenantKey:
    customer, _, company = name.partition(":")
    return TenantKey(unescape(customer), unescape(company))


def by_tenant(reports: list[ReplicaReport]) -> dict[TenantKey, TenantBreaker]:
    """Each tenant open on some replica: on how many of the reporting ones, and since when."""
    tenants: set[TenantKey] = set()
    for report in reports:
        tenants |= set(report.open)
    board = {}
    for tenant in tenants:
        opened = [r.open[tenant].since for r in reports if tenant in r.open]
        board[tenant] = TenantBreaker(len(opened), len(reports), min(opened))
    return board


class BreakerReports:
    """The replicas' reports under one prefix: written by each replica, read by the console."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._key = key(prefix, "breakers")

    @speaks_state
    async def publish(
        self, replica: str, open_: Mapping[TenantKey, OpenBreaker], ttl_s: float
    ) -> None:
        """Replace ``replica``'s report with ``open_``; it holds for ``ttl_s``."""
        now = datetime.now(UTC)
        report = {
            "seen": now.isoformat(),
            "until": (now + timedelta(seconds=ttl_s)).isoformat(),
            "open": {_field(t): [b.state, b.since.isoformat()] for t, b in open_.items()},
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key, replica, orjson.dumps(report))
            pipe.pexpire(self._key, max(1, int(ttl_s * 1000)))
            await pipe.execute()

    @speaks_state
    async def withdraw(self, replica: str) -> None:
        """``replica`` stops: it no longer counts."""
        await self._redis.hdel(self._key, replica)

    @speaks_state
    async def reports(self) -> list[ReplicaReport]:
        """Every live replica's report, by replica name; run-out ones are removed."""
        now = datetime.now(UTC)
        found = await self._redis.hgetall(self._key)
        reports, gone = [], []
        for name, value in found.items():
            report = _report(_text(name), value, now)
            if report is None:
                gone.append(name)
            else:
                reports.append(report)
        if gone:
            await self._redis.hdel(self._key, *gone)
        return sorted(reports, key=lambda r: r.replica)
