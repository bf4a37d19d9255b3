"""``ledger resolve --not-delivered`` is timed from the record's last attempt, as the serial lane
recorded it: the real lane over HTTP to the sandbox and real Redis, then the command line.

The tool's settings are the deployment's (5 attempts of up to 30 s are possible); the record's
calls here were fewer and quicker, and the guard follows what really happened."""

from __future__ import annotations

from datetime import datetime

from redis.asyncio import Redis

from service.dev.sandbox import SandboxThread
from service.dev.sandbox.client import sandbox_post
from tests.integration.lanes.test_serial_arrays import array_lane
from tests.support.cli import Ran, sagebridge

AFTER_LAST_ATTEMPT_S = 30 + 1
"""The tool's HTTP_TIMEOUT_S (30, the default) plus its SETTLE_AFTER_UNKNOWN_S (1 in tests)."""


def accepted_from(ran: Ran) -> float:
    """The time ``ledger show`` says ``--not-delivered`` will be accepted from (Unix seconds)."""
    text = ran.out.split("--not-delivered accepted from ")[1].strip()
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def times(redis: Redis, prefix: str, event_id: str) -> tuple[float, float | None]:
    """When the intent was written, and when the record's last attempt began, as recorded
    (Redis's clock; ``None`` if it was not)."""
    at, tried = await redis.hmget(f"{prefix}:ledger:1001:ACME:{event_id}", "at", "tried")
    return int(at) / 1000, None if tried is None else int(tried) / 1000


async def test_an_intent_left_by_one_call_is_resolvable_one_call_and_settle_period_later(
    redis: Redis, redis_prefix: str, sandbox: SandboxThread, service_env: dict[str, str]
) -> None:
    """Not 4 more possible attempts later: the ledger knows there was one."""
    await sandbox_post(sandbox, "/_sandbox/faults", {"store_then_fail_rate": 1.0})
    async with array_lane(redis, redis_prefix, sandbox, atomic=False, batch_max=1) as lane:
        answers = await lane.run(range(1, 2))
    assert answers["inv-1"].stage is not None and answers["inv-1"].stage.value == "unknown_outcome"
    written, _ = await times(redis, redis_prefix, "inv-1")
    shown = await sagebridge(service_env, "ledger", "show", "inv-1")
    assert abs(accepted_from(shown) - (written + AFTER_LAST_ATTEMPT_S)) < 0.002, shown.out
    early = await sagebridge(service_env, "ledger", "resolve", "inv-1", "--not-delivered", ok=False)
    assert "refused" in early.err and "accepted from" in early.err


async def test_a_retry_moves_the_guard_to_the_retrys_start(
    redis: Redis, redis_prefix: str, sandbox: SandboxThread, service_env: dict[str, str]
) -> None:
    """The first call is throttled with ``Retry-After: 2``; the retry, 2 s later, is stored and
    answered 502. The guard counts from the retry, which the intent's time alone cannot tell."""
    await sandbox_post(
        sandbox,
        "/_sandbox/faults",
        {"throttle_count": 1, "retry_after": "2", "store_then_fail_rate": 1.0},
    )
    async with array_lane(redis, redis_prefix, sandbox, atomic=False, batch_max=1) as lane:
        answers = await lane.run(range(1, 2))
    assert answers["inv-1"].stage is not None and answers["inv-1"].stage.value == "unknown_outcome"
    assert answers["inv-1"].attempts == 2
    written, tried = await times(redis, redis_prefix, "inv-1")
    assert tried is not None and tried >= written + 2, "the retry's start is recorded"
    shown = await sagebridge(service_env, "ledger", "show", "inv-1")
    assert abs(accepted_from(shown) - (tried + AFTER_LAST_ATTEMPT_S)) < 0.002, shown.out
