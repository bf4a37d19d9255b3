"""An array of transactional records refused with a 4xx and the Connector's ERROR envelope: the
status does not make the refusal a certain one. Whether rows before the bad one were stored is
the route's ``atomic_arrays`` to say, as for a refusal answered 200. The sandbox over HTTP and
real Redis; what the sandbox stored is the verdict."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from service.answers.outcomes import Stage
from service.dev.sandbox import SandboxThread
from service.dev.sandbox.client import sandbox_post
from service.dev.sandbox.client import stats as sandbox_stats
from tests.integration.lanes.test_serial_arrays import BAD, array_lane, invoice_numbers, stages


@pytest.mark.parametrize("status", [400, 422])
async def test_a_non_atomic_array_refused_with_a_4xx_leaves_every_record_in_doubt(
    redis: Redis, redis_prefix: str, sandbox: SandboxThread, status: int
) -> None:
    """The Connector stored the five rows before the bad one and answered 4xx ERROR: which rows
    landed cannot be known, so all ten are ``unknown_outcome`` and a redelivery sends none."""
    faults = {"reject_marker": BAD, "partial_arrays": True, "refusal_status": status}
    await sandbox_post(sandbox, "/_sandbox/faults", faults)
    async with array_lane(redis, redis_prefix, sandbox, atomic=False) as under_test:
        answers = await under_test.run(range(10), bad=5)
        again = await under_test.run(range(10), bad=5)  # fixed and replayed, or redelivered
    assert stages(answers, range(10)) == [Stage.UNKNOWN_OUTCOME] * 10
    assert f"HTTP {status}" in (answers["inv-0"].message or "")
    assert stages(again, range(10)) == [Stage.UNKNOWN_OUTCOME] * 10
    assert await invoice_numbers(sandbox) == [f"INV{n:04d}" for n in range(5)]
    assert (await sandbox_stats(sandbox))["calls"] == 1


async def test_an_atomic_array_refused_with_a_4xx_is_split_like_any_refusal(
    redis: Redis, redis_prefix: str, sandbox: SandboxThread
) -> None:
    """Nothing of an atomic array was stored: the good records go again in parts and only the
    bad one is refused, as when the refusal comes with a 200."""
    await sandbox_post(sandbox, "/_sandbox/faults", {"reject_marker": BAD, "refusal_status": 422})
    async with array_lane(redis, redis_prefix, sandbox, atomic=True) as under_test:
        answers = await under_test.run(range(10), bad=3)
    assert stages(answers, range(10)) == [None] * 3 + [Stage.CONNECTOR] + [None] * 6
    assert await invoice_numbers(sandbox) == [f"INV{n:04d}" for n in range(10) if n != 3]
