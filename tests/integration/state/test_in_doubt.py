"""Finding every intent the ledger holds (the console's "In doubt" page): intents only, under
this prefix only, whatever ``:`` or glob characters the names hold, oldest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from service.state.epoch import Epoch
from service.state.in_doubt import intents
from service.state.ledger import Ledger
from service.tenants import TenantKey

RETENTION_S = 3600.0


def ledger(redis: Redis, prefix: str) -> Ledger:
    return Ledger(redis, prefix, RETENTION_S, Epoch(redis, prefix, quarantine_s=1.0))


async def test_every_intent_of_this_prefix_oldest_first(redis: Redis, redis_prefix: str) -> None:
    prefix = f"{redis_prefix}[1]"  # glob characters: must match only itself
    neighbour = f"{redis_prefix}1"  # what the unescaped glob would also match
    acme, odd = TenantKey("1001", "ACME"), TenantKey("1:2", "A%B")
    mine = ledger(redis, prefix)
    await mine.begin_many([(acme, "inv-1", "d1")])
    await mine.begin_many([(odd, "inv:2", "d2")])
    await mine.begin_many([(acme, "sent-1", "d3")])
    await mine.delivered_many([(acme, "sent-1", "d3", 1)])
    await ledger(redis, neighbour).begin_many([(acme, "other-1", "d4")])
    await redis.pexpire(f"{prefix}:ledger:1001:ACME:inv-1", int((RETENTION_S - 60) * 1000))
    try:
        found = await intents(redis, prefix, RETENTION_S)
    finally:
        for name in [k async for k in redis.scan_iter(match=f"{redis_prefix}*")]:
            await redis.delete(name)

    assert [(i.tenant, i.event_id) for i in found] == [(acme, "inv-1"), (odd, "inv:2")]
    now = datetime.now(UTC)
    assert now - timedelta(seconds=70) < found[0].written < now - timedelta(seconds=50)
    assert now - timedelta(seconds=10) < found[1].written <= now
