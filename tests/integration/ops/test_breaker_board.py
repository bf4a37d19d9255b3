"""A replica's report of its breakers, as the breakers change: reported at start (no breaker
open), a tenant's breaker reported once it opens, kept with its first opening through a failed
probe, gone when it closes, and the whole report gone when the replica stops."""

from __future__ import annotations

from redis.asyncio import Redis

from service.lanes.breaker import Breakers, State
from service.ops.breaker_board import BreakerBoard
from service.state.breaker_reports import BreakerReports, ReplicaReport
from service.state.client import connect
from service.tenants import TenantKey
from tests.support.waiting import until

ACME, OTHER = TenantKey("1001", "ACME"), TenantKey("1002", "OTHER")


async def test_the_report_follows_the_breakers(
    redis: Redis, redis_url: str, redis_prefix: str
) -> None:
    client = connect(redis_url)
    reports = BreakerReports(client, redis_prefix)
    board = BreakerBoard(reports, "pod-a/7")
    breakers = Breakers(threshold=2, cooldown_s=60, on_change=board.changed)

    async def report() -> ReplicaReport | None:
        found = await BreakerReports(redis, redis_prefix).reports()
        return found[0] if found else None

    async def shows(open_: dict[TenantKey, str]) -> bool:
        found = await report()
        return found is not None and {t: b.state for t, b in found.open.items()} == open_

    await board.start()
    try:
        await until(lambda: shows({}), 10, "the replica reported, nothing open")
        breakers.for_tenant(OTHER).success()  # a closed breaker's success: nothing to report
        breakers.for_tenant(ACME).failure(at_once=True)
        await until(lambda: shows({ACME: "open"}), 10, "ACME's breaker reported open")
        opened = (await report()).open[ACME].since  # type: ignore[union-attr]

        board.changed(ACME, State.HALF_OPEN)  # the probe
        await until(lambda: shows({ACME: "half_open"}), 10, "the probe reported")
        board.changed(ACME, State.OPEN)  # the probe failed: still the same outage
        await until(lambda: shows({ACME: "open"}), 10, "re-opened reported")
        assert (await report()).open[ACME].since == opened  # type: ignore[union-attr]

        breakers.for_tenant(ACME).success()
        await until(lambda: shows({}), 10, "ACME's breaker reported closed")
    finally:
        await board.stop()
        await client.aclose()
    assert await report() is None, "a replica that stops withdraws its report"
