"""The ``unknown_outcome`` runbook of docs/operating.md, end to end, in both verdicts: an
invoice's answer is lost (the Connector stored it, or not, then failed); the operator finds it with
``dlt list --stage unknown_outcome``, checks Sage, gives the verdict with ``ledger resolve``, and
replays with ``dlt replay --stage unknown_outcome``. Either way Sage ends up holding the invoice
exactly once, and the event's last reply is SUCCESS."""

from __future__ import annotations

import pytest

from service.dev.events import event, produce
from service.dev.sandbox.client import sandbox_post, stored_records
from service.dev.sandbox.client import stats as sandbox_stats
from service.dev.topics import Topics
from tests.support.cli import sagebridge
from tests.support.kafka import Collector
from tests.support.waiting import until

INVOICE = {"InvoiceNo": "INV000001", "CustomerNo": "ABC", "Amount": 101}


@pytest.mark.parametrize(
    ("fault", "in_sage", "verdict", "calls_after"),
    [
        # A proxy's 502 after Sage stored it: Sage has it; the replay makes no call.
        ({"store_then_fail_rate": 1.0, "store_then_fail_status": 502}, 1, "--delivered", 1),
        # A 500 before anything was stored: Sage lacks it; the replay sends it.
        ({"fail_rate": 1.0}, 0, "--not-delivered", 2),
    ],
    ids=["stored-then-502-delivered", "500-not-delivered"],
)
async def test_the_unknown_outcome_runbook(
    running_service,
    service_env: dict[str, str],
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    sandbox,
    fault: dict[str, object],
    in_sage: int,
    verdict: str,
    calls_after: int,
) -> None:
    await sandbox_post(sandbox, "/_sandbox/faults", fault)
    # One attempt of at most 2 s, then the 1 s settle period: --not-delivered is accepted 3 s
    # after the call, as the runbook says to wait.
    service_env = {
        **service_env,
        "SAGEBRIDGE_MAX_ATTEMPTS": "1",
        "SAGEBRIDGE_HTTP_TIMEOUT_S": "2",
    }
    async with running_service(max_attempts=1, http_timeout_s=2):
        await produce(
            kafka_bootstrap,
            topics.events,
            [(b"inv-1", event("inv-1", INVOICE, type="ar_invoice.create"))],
        )
        [lost] = await collector.wait_for(topics.replies, 1)
        await collector.wait_for(topics.dlt, 1)
        assert lost.json()["stage"] == "unknown_outcome", lost.json()
        await sandbox_post(
            sandbox, "/_sandbox/faults", {"store_then_fail_rate": 0.0, "fail_rate": 0.0}
        )

        # 1. Find it.
        found = await sagebridge(service_env, "dlt", "list", "--stage", "unknown_outcome", "--json")
        [letter] = found.json()["letters"]
        assert (letter["event_id"], letter["tenant"]) == ("inv-1", "1001/ACME")
        # 2. Check Sage, and what the ledger says.
        assert len(await stored_records(sandbox, "/accountsReceivable")) == in_sage
        shown = await sagebridge(service_env, "ledger", "show", "inv-1")
        assert shown.out.startswith("inv-1 (1001/ACME): in_doubt, ")

        # 3. The verdict, once the call can no longer land.
        async def given() -> bool:
            ran = await sagebridge(service_env, "ledger", "resolve", "inv-1", verdict, ok=None)
            assert ran.code == 0 or "--not-delivered is accepted from" in ran.err, ran.err
            return ran.code == 0

        await until(given, 30, "the verdict to be accepted")
        # 4. Replay.
        replay = await sagebridge(service_env, "dlt", "replay", "--stage", "unknown_outcome")
        assert replay.out.splitlines()[-1] == "replayed 1 dead letter(s)"
        replies = await collector.wait_for(topics.replies, 2)
        again = await sagebridge(service_env, "dlt", "replay", "--stage", "unknown_outcome")
        assert again.out.splitlines()[-1] == "replayed 0 dead letter(s)"

    assert replies[1].json()["response"] == "SUCCESS", replies[1].json()
    [stored] = await stored_records(sandbox, "/accountsReceivable")
    assert stored["record"] == INVOICE
    assert (await sandbox_stats(sandbox))["calls"] == calls_after
    assert len(collector.messages[topics.dlt]) == 1
