"""Each replica's circuit breakers, reported in Redis for the operators' console.

A breaker lives in one replica's memory (:mod:`service.lanes.breaker`): replicas do not share
it, and each opens on its own failures. So that a person can see a tenant's outage on one page,
every replica keeps one hash, ``<prefix>:breakers:<replica>``, holding its breakers that are not
closed and when it last wrote:

- field ``seen``: when the replica wrote the hash (ISO 8601, UTC);
- one field per tenant whose breaker is open or probing (``customer:company``, each part escaped
  as in :mod:`service.state.keys`, so a tenant field always holds a ``:`` and ``seen`` never
  does), valued ``<state> <since>``: ``open`` or ``half_open``, and when it left ``closed``.

The hash is rewritten whole (one transaction) when a breaker changes and on a slow heartbeat, and
expires a few heartbeats later: a replica that died stops being counted once its hash expires,
and one that stops cleanly deletes it. Closed breakers and idle tenants cost nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

from service.state.keys import escape, key, pattern, unescape
from service.state.unavailable import speaks_state
from service.tenants import TenantKey

SEEN = "seen"


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


def _report(replica: str, fields: Mapping[bytes, bytes]) -> ReplicaReport | None:
    """A hash as read back; ``None`` for one that is not a report (no ``seen``)."""
    found = {_text(k): _text(v) for k, v in fields.items()}
    try:
        seen = datetime.fromisoformat(found.pop(SEEN))
    except (KeyError, ValueError):
        return None
    open_: dict[TenantKey, OpenBreaker] = {}
    for name, value in found.items():
        customer, _, company = name.partition(":")
        state, _, since = value.partition(" ")
        try:
            opened = datetime.fromisoformat(since)
        except ValueError:
            continue
        open_[TenantKey(unescape(customer), unescape(company))] = OpenBreaker(state, opened)
    return ReplicaReport(replica, seen, open_)


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
        self._prefix = prefix

    def _key(self, replica: str) -> str:
        return key(self._prefix, "breakers", replica)

    @speaks_state
    async def publish(
        self, replica: str, open_: Mapping[TenantKey, OpenBreaker], ttl_s: float
    ) -> None:
        """Replace ``replica``'s report with ``open_``; it expires after ``ttl_s``."""
        fields = [SEEN, datetime.now(UTC).isoformat()]
        for tenant, breaker in open_.items():
            fields += [_field(tenant), f"{breaker.state} {breaker.since.isoformat()}"]
        name = self._key(replica)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(name)
            pipe.hset(name, items=fields)
            pipe.pexpire(name, max(1, int(ttl_s * 1000)))
            await pipe.execute()

    @speaks_state
    async def withdraw(self, replica: str) -> None:
        """``replica`` stops: it no longer counts."""
        await self._redis.delete(self._key(replica))

    @speaks_state
    async def reports(self) -> list[ReplicaReport]:
        """Every live replica's report, by replica name."""
        head = key(self._prefix, "breakers") + ":"
        names = [n async for n in self._redis.scan_iter(match=pattern(self._prefix, "breakers"))]
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(name)
            found = await pipe.execute()
        reports = []
        for name, fields in zip(names, found, strict=True):
            report = _report(unescape(_text(name)[len(head) :]), fields)
            if report is not None:
                reports.append(report)
        return sorted(reports, key=lambda r: r.replica)
