"""The replicas' breaker reports in Redis: each replica's report replaces its last, expires unless
rewritten, is withdrawn on a clean stop, and reads back per tenant across replicas, whatever
``:`` or glob characters the names hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from service.state.breaker_reports import BreakerReports, OpenBreaker, TenantBreaker, by_tenant
from service.tenants import TenantKey
from tests.support.waiting import until

ACME, ODD = TenantKey("1001", "ACME"), TenantKey("1:2", "A%B")
EARLY = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
LATE = EARLY + timedelta(minutes=5)


async def test_each_replica_reports_its_open_breakers_read_back_per_tenant(
    redis: Redis, redis_prefix: str
) -> None:
    prefix = f"{redis_prefix}[1]"  # glob characters: must match only itself
    mine, neighbour = BreakerReports(redis, prefix), BreakerReports(redis, f"{redis_prefix}1")
    await mine.publish("pod-a/7", {ACME: OpenBreaker("open", LATE)}, 60)
    await mine.publish(
        "pod:b/8", {ACME: OpenBreaker("half_open", EARLY), ODD: OpenBreaker("open", LATE)}, 60
    )
    await mine.publish("pod-c/9", {}, 60)
    await neighbour.publish("pod-d/1", {ACME: OpenBreaker("open", EARLY)}, 60)

    reports = await mine.reports()
    assert [r.replica for r in reports] == ["pod-a/7", "pod-c/9", "pod:b/8"]
    assert reports[2].open == {
        ACME: OpenBreaker("half_open", EARLY),
        ODD: OpenBreaker("open", LATE),
    }
    assert by_tenant(reports) == {
        ACME: TenantBreaker(open_on=2, replicas=3, since=EARLY),
        ODD: TenantBreaker(open_on=1, replicas=3, since=LATE),
    }

    await mine.publish("pod:b/8", {}, 60)  # its breakers closed: the report is replaced
    await mine.withdraw("pod-a/7")  # stopped cleanly
    assert by_tenant(await mine.reports()) == {}
    assert [r.replica for r in await mine.reports()] == ["pod-c/9", "pod:b/8"]


async def test_a_report_not_rewritten_expires(redis: Redis, redis_prefix: str) -> None:
    reports = BreakerReports(redis, redis_prefix)
    await reports.publish("gone/1", {ACME: OpenBreaker("open", EARLY)}, 60)
    assert 0 < await redis.pttl(f"{redis_prefix}:breakers") <= 60_000
    await reports.publish("gone/1", {ACME: OpenBreaker("open", EARLY)}, 0.05)

    async def expired() -> bool:
        return await reports.reports() == []

    await until(expired, 10, "the dead replica's report to expire")
