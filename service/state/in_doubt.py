"""Every intent the ledger holds: the events whose outcome is unknown, for the operators' console.

The ledger (:mod:`service.state.ledger`) is keyed by tenant and ``event_id`` and has no index of
its intents, so they are found with ``SCAN`` over the ledger's keys (non-blocking for Redis,
whatever the ledger's size) and read in pipelined batches. When an intent was last written
(its last attempt) follows from its remaining lifetime: every write sets the retention anew.
Each intent carries its entry as ``ledger show`` reads it, so the console can say from when the
settle guard of ``ledger resolve --not-delivered`` lets a verdict through.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from service.state.keys import key, pattern, unescape
from service.state.ledger import StoredEntry, stored_entry
from service.tenants import TenantKey

SCAN_COUNT = 1000
"""Keys asked of Redis per ``SCAN`` step (a hint; Redis may return more or fewer)."""


@dataclass(frozen=True, slots=True)
class Intent:
    """An unknown outcome: a call was sent for this event and never answered."""

    tenant: TenantKey
    event_id: str
    written: datetime
    """When the intent was last written: the event's last attempt (UTC)."""
    entry: StoredEntry
    """The entry as :meth:`~service.state.ledger.Ledger.look` reads it (its attempts' times)."""


async def intents(redis: Redis, prefix: str, retention_s: float) -> list[Intent]:
    """Every intent in the ledger under ``prefix``, oldest first."""
    head = key(prefix, "ledger") + ":"
    found: list[Intent] = []
    now = datetime.now(UTC)
    batch: list[bytes] = []
    async for name in redis.scan_iter(match=pattern(prefix, "ledger"), count=SCAN_COUNT):
        batch.append(name)
        if len(batch) >= SCAN_COUNT:
            found += await _read(redis, batch, head, retention_s, now)
            batch = []
    if batch:
        found += await _read(redis, batch, head, retention_s, now)
    return sorted(found, key=lambda intent: intent.written)


async def _read(
    redis: Redis, names: list[bytes], head: str, retention_s: float, now: datetime
) -> list[Intent]:
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hmget(name, "state", "attempts", "at", "tried")
            pipe.pttl(name)
        answers = await pipe.execute()
    found = []
    for i, name in enumerate(names):
        (state, attempts, at, tried), ttl_ms = answers[2 * i], answers[2 * i + 1]
        parts = name.decode("utf-8", "replace")[len(head) :].split(":")
        entry = stored_entry(state, attempts, at, tried, ttl_ms)
        if state != b"intent" or entry is None or len(parts) != 3:
            continue
        customer, company, event_id = (unescape(p) for p in parts)
        age_s = max(0.0, retention_s - max(0, ttl_ms) / 1000)
        written = now - timedelta(seconds=age_s)
        found.append(Intent(TenantKey(customer, company), event_id, written, entry))
    return found
