"""``sagebridge ledger show`` and ``ledger resolve`` through the command line, against entries
the real ledger wrote in Redis: what each verdict leaves for the next ``begin`` (a replay), and
the refusals — an event already delivered, one the ledger does not know."""

from __future__ import annotations

from datetime import datetime

import pytest
from redis.asyncio import Redis

from service.state.epoch import Epoch
from service.state.ledger import EntryState, Ledger, fingerprint
from service.tenants import TenantKey
from tests.support.cli import sagebridge
from tests.support.ledger import begin_one, delivered_one
from tests.support.waiting import until

ACME = TenantKey("1001", "ACME")  # the default tenant of service_env
BETA = TenantKey("2002", "BETA")
RECORD = {"InvoiceNo": "INV000001", "CustomerNo": "ABC", "Amount": 101}
DIGEST = fingerprint(RECORD)


@pytest.fixture
def ledger(redis: Redis, redis_prefix: str) -> Ledger:
    return Ledger(redis, redis_prefix, 3600, Epoch(redis, redis_prefix, quarantine_s=1))


async def test_show_tells_each_state(ledger: Ledger, service_env: dict[str, str]) -> None:
    none = await sagebridge(service_env, "ledger", "show", "inv-1")
    assert none.out == "inv-1 (1001/ACME): none — the ledger does not know it\n"
    await begin_one(ledger, ACME, "inv-1", DIGEST)
    doubt = await sagebridge(service_env, "ledger", "show", "inv-1")
    assert doubt.out.startswith(
        "inv-1 (1001/ACME): in_doubt, attempts not counted in the ledger (see the dead "
        "letter's x-attempts), written 20"
    )
    await delivered_one(ledger, ACME, "inv-1", DIGEST, 2)
    done = await sagebridge(service_env, "ledger", "show", "inv-1")
    assert done.out.startswith("inv-1 (1001/ACME): delivered, 2 attempt(s), written 20")
    assert "kept until 20" in done.out


@pytest.mark.parametrize(
    ("verdict", "then"),
    [(["--delivered"], EntryState.DELIVERED), (["--not-delivered", "--force"], EntryState.NEW)],
)
async def test_a_verdict_decides_what_a_replay_does(
    ledger: Ledger, service_env: dict[str, str], verdict: list[str], then: EntryState
) -> None:
    await begin_one(ledger, ACME, "inv-1", DIGEST, claim="a-process-that-died")
    assert (await begin_one(ledger, ACME, "inv-1", DIGEST)).state is EntryState.IN_DOUBT
    ran = await sagebridge(service_env, "ledger", "resolve", "inv-1", *verdict)
    assert ran.out.startswith("inv-1 (1001/ACME): ")
    # A replay of the event begins again: answered from the ledger, or sent.
    assert (await begin_one(ledger, ACME, "inv-1", DIGEST)).state is then


async def test_not_delivered_is_refused_while_the_last_call_may_still_land(
    ledger: Ledger, service_env: dict[str, str], redis: Redis, redis_prefix: str
) -> None:
    """An operator who checks Sage right after the alert may find nothing yet: the abandoned
    call can still be running at the Connector. ``--not-delivered`` then would let a replay
    store the invoice twice, so it is refused until the last possible attempt has settled,
    saying when; ``--force`` overrides."""
    await begin_one(ledger, ACME, "inv-1", DIGEST, claim="a-process-that-died")
    written_ms = int(await redis.hget(f"{redis_prefix}:ledger:1001:ACME:inv-1", "at"))
    early = await sagebridge(service_env, "ledger", "resolve", "inv-1", "--not-delivered", ok=False)
    [line] = early.err.splitlines()
    assert line.startswith(
        "sagebridge ledger resolve: refused: inv-1 (1001/ACME) may still be stored by its last call"
    )
    # 4 earlier attempts of 30 s with their longest backoffs (20, 40, 80, 160 ms in these
    # tests), the last attempt's 30 s, then the settle period (1 s in these tests).
    expected_s = 4 * 30 + 0.3 + 30 + 1
    printed = datetime.fromisoformat(
        line.split("accepted from ")[1].split(": check")[0].replace("Z", "+00:00")
    )
    assert abs(printed.timestamp() - (written_ms / 1000 + expected_s)) < 0.002, line
    shown = await sagebridge(service_env, "ledger", "show", "inv-1")
    assert "--not-delivered accepted from " in shown.out
    assert (await begin_one(ledger, ACME, "inv-1", DIGEST)).state is EntryState.IN_DOUBT
    await sagebridge(service_env, "ledger", "resolve", "inv-1", "--not-delivered", "--force")
    assert (await begin_one(ledger, ACME, "inv-1", DIGEST)).state is EntryState.NEW


async def test_not_delivered_is_accepted_once_the_last_call_has_settled(
    ledger: Ledger, service_env: dict[str, str]
) -> None:
    quick = {
        **service_env,
        "SAGEBRIDGE_MAX_ATTEMPTS": "1",
        "SAGEBRIDGE_HTTP_TIMEOUT_S": "0.5",
        "SAGEBRIDGE_SETTLE_AFTER_UNKNOWN_S": "1",
    }
    await begin_one(ledger, ACME, "inv-1", DIGEST, claim="a-process-that-died")

    async def accepted() -> bool:
        ran = await sagebridge(quick, "ledger", "resolve", "inv-1", "--not-delivered", ok=None)
        assert ran.code == 0 or "refused" in ran.err, ran.err
        return ran.code == 0

    await until(accepted, 30, "--not-delivered to be accepted 1.5 s after the attempt")
    assert (await begin_one(ledger, ACME, "inv-1", DIGEST)).state is EntryState.NEW


async def test_a_tenant_is_named_or_the_default_is_meant(
    ledger: Ledger, service_env: dict[str, str]
) -> None:
    await begin_one(ledger, BETA, "inv-1", DIGEST)
    await sagebridge(service_env, "ledger", "resolve", "inv-1", "--delivered", ok=False)
    await sagebridge(
        service_env, "ledger", "resolve", "inv-1", "--tenant", "2002/BETA", "--delivered"
    )
    shown = await sagebridge(service_env, "ledger", "show", "inv-1", "--tenant", "2002/BETA")
    assert shown.out.startswith("inv-1 (2002/BETA): delivered")


async def test_resolving_a_delivered_event_is_refused(
    ledger: Ledger, service_env: dict[str, str]
) -> None:
    await begin_one(ledger, ACME, "inv-1", DIGEST)
    await delivered_one(ledger, ACME, "inv-1", DIGEST, 1)
    for verdict in ("--delivered", "--not-delivered"):
        ran = await sagebridge(service_env, "ledger", "resolve", "inv-1", verdict, ok=False)
        assert ran.err == (
            "sagebridge ledger resolve: inv-1 (1001/ACME) is already delivered (the Cloud "
            "Connector answered SUCCESS); nothing to resolve\n"
        )
    assert (await begin_one(ledger, ACME, "inv-1", DIGEST)).state is EntryState.DELIVERED


async def test_resolving_an_unknown_event_is_refused(service_env: dict[str, str]) -> None:
    ran = await sagebridge(service_env, "ledger", "resolve", "inv-9", "--delivered", ok=False)
    assert ran.err.startswith("sagebridge ledger resolve: the ledger does not know inv-9")
    assert len(ran.err.splitlines()) == 1


@pytest.mark.parametrize(
    "options",
    [
        ["resolve", "inv-1"],
        ["resolve", "inv-1", "--delivered", "--not-delivered"],
        ["show", "inv-1", "--tenant", "ACME"],
        ["show"],
    ],
)
async def test_a_bad_argument_is_one_line(service_env: dict[str, str], options: list[str]) -> None:
    ran = await sagebridge(service_env, "ledger", *options, ok=False)
    assert ran.code == 2 and len(ran.err.splitlines()) == 1, ran.err


async def test_redis_unreachable_is_one_line(service_env: dict[str, str]) -> None:
    env = {**service_env, "SAGEBRIDGE_REDIS_URL": "redis://127.0.0.1:1/0"}
    ran = await sagebridge(env, "ledger", "show", "inv-1", ok=False)
    assert ran.err.startswith("sagebridge ledger show: cannot reach Redis")
    assert len(ran.err.splitlines()) == 1
