"""The operators' console in a real browser, against the real broker, Redis, sandbox and
service: the unknown-outcome runbook done by an accountant, a filtered set of dead letters
replayed once from two tabs, and a tenant paused and resumed from the page."""

from __future__ import annotations

import pytest

from service.dev.events import contact, event, produce
from service.dev.sandbox.client import sandbox_post, stored_records
from service.dev.sandbox.client import stats as sandbox_stats
from service.dev.topics import Topics
from service.state.keys import key
from tests.conftest import COMPANY, CUSTOMER
from tests.integration.console.conftest import OPERATOR, PASSWORD
from tests.integration.tools import letters
from tests.support.browser import Browser
from tests.support.kafka import Collector, everything_in
from tests.support.waiting import throughout, until

INVOICE = {"InvoiceNo": "INV000001", "CustomerNo": "ABC", "Amount": 101}


async def test_an_accountant_settles_an_unknown_outcome_and_it_is_audited(
    running_service,
    browser: Browser,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    sandbox,
    redis,
    redis_prefix: str,
    audit_topic: str,
) -> None:
    await sandbox_post(sandbox, "/_sandbox/faults", {"store_then_fail_rate": 1.0})
    async with running_service():
        await produce(
            kafka_bootstrap,
            topics.events,
            [(b"inv-1", event("inv-1", INVOICE, type="ar_invoice.create"))],
        )
        [lost] = await collector.wait_for(topics.replies, 1)
        assert lost.json()["stage"] == "unknown_outcome", lost.json()
        await collector.wait_for(topics.dlt, 1)
        await sandbox_post(sandbox, "/_sandbox/faults", {"store_then_fail_rate": 0.0})

        assert "Overview" in await browser.sign_in(OPERATOR, PASSWORD)
        overview = await browser.text()
        row = f"{CUSTOMER}/{COMPANY} flowing closed 1 unknown_outcome 1"  # in doubt, a letter
        assert row in overview.splitlines(), overview
        page = await browser.open("/in-doubt")
        assert "inv-1" in page and f"Tenant {CUSTOMER}/{COMPANY}" in page, page
        assert "answered SUCCESS without calling Sage again" in page  # what "delivered" does
        # Inside the settle period (HTTP_TIMEOUT_S 30 s after the call): "delivered" still goes.
        assert "“Not delivered” is accepted from" in page, page
        assert "“Delivered” is accepted now." in page, page
        await browser.fill("reason", "INV000001 is in Sage, posted 08:12")
        done = await browser.press("Delivered")
        assert "recorded as delivered" in done, done
        entry = key(redis_prefix, "ledger", CUSTOMER, COMPANY, "inv-1")
        assert await redis.hget(entry, "state") == b"delivered"
        assert "No event is in doubt." in await browser.open("/in-doubt")

        await browser.open("/letters?stage=unknown_outcome")
        assert "Replayed 1 dead letter(s)." in await browser.press("Replay these 1")
        replies = await collector.wait_for(topics.replies, 2)
        assert replies[1].json()["response"] == "SUCCESS", replies[1].json()

    history = await browser.open("/events?event_id=inv-1")
    assert "inv-1 (1001/ACME): delivered" in history, history
    assert f"{OPERATOR} resolve_delivered" in history and "posted 08:12" in history, history
    assert f"{OPERATOR} replay" in history, history
    audit = [
        r.json()
        for r in await everything_in(kafka_bootstrap, audit_topic)
        if r.value.startswith(b"{")
    ]
    verdict = next(a for a in audit if a["what"] == "resolve_delivered")
    assert verdict["who"] == OPERATOR and verdict["event_ids"] == ["inv-1"]
    assert verdict["tenant"] == f"{CUSTOMER}/{COMPANY}" and verdict["at"].endswith("Z")
    assert verdict["reason"] == "INV000001 is in Sage, posted 08:12"
    assert len(await stored_records(sandbox, "/accountsReceivable")) == 1
    assert (await sandbox_stats(sandbox))["calls"] == 1, "the replay was answered from the ledger"


SETTLE = {"SAGEBRIDGE_HTTP_TIMEOUT_S": "1", "SAGEBRIDGE_SETTLE_AFTER_UNKNOWN_S": "8"}
"""A settle guard short enough to wait out: "not delivered" is accepted 9 s after the call."""


@pytest.mark.parametrize("console_env", [SETTLE], indirect=True)
async def test_not_delivered_is_refused_until_the_settle_period_is_over(
    running_service,
    browser: Browser,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    sandbox,
    redis,
    redis_prefix: str,
    audit_topic: str,
) -> None:
    """The Connector answered 500 and stored nothing; the accountant finds nothing in Sage at
    once, but the page holds "not delivered" until the call can no longer land, says until when,
    and takes it after."""
    await browser.sign_in(OPERATOR, PASSWORD)
    await sandbox_post(sandbox, "/_sandbox/faults", {"fail_rate": 1.0})
    async with running_service(http_timeout_s=1.0, settle_after_unknown_s=8.0):
        await produce(
            kafka_bootstrap,
            topics.events,
            [(b"inv-2", event("inv-2", INVOICE, type="ar_invoice.create"))],
        )
        [lost] = await collector.wait_for(topics.replies, 1)
        assert lost.json()["stage"] == "unknown_outcome", lost.json()

    page = await browser.open("/in-doubt")
    assert "“Not delivered” is accepted from" in page, page
    await browser.fill("reason", "no INV000001 in Sage")
    refused = await browser.press("Not delivered")
    assert "A call was sent to Sage for each of these events" in refused, "the In doubt page"
    assert "“Not delivered” was not recorded for inv-2" in refused, refused
    assert "It is accepted from" in refused and "look in Sage again then" in refused, refused
    entry = key(redis_prefix, "ledger", CUSTOMER, COMPANY, "inv-2")
    assert await redis.hget(entry, "state") == b"intent"

    async def accepted_now() -> bool:
        return "both accepted now" in await browser.open("/in-doubt")

    await until(accepted_now, 60, "the page to accept “not delivered”")
    await browser.fill("reason", "no INV000001 in Sage at 08:30")
    done = await browser.press("Not delivered")
    assert "intent cleared; a replay sends it" in done, done
    assert not await redis.exists(entry)

    history = await browser.open("/events?event_id=inv-2")
    assert f"{OPERATOR} resolve_not_delivered" in history and "at 08:30" in history, history
    audit = [
        r.json()
        for r in await everything_in(kafka_bootstrap, audit_topic)
        if r.value.startswith(b"{")
    ]
    assert [(a["what"], a["event_ids"], a["reason"]) for a in audit] == [
        ("resolve_not_delivered", ["inv-2"], "no INV000001 in Sage at 08:30")
    ]


async def test_a_filtered_set_replayed_from_two_tabs_goes_out_once(
    browser: Browser, kafka_bootstrap: str, topics: Topics
) -> None:
    sample = letters.sample()
    await letters.write(kafka_bootstrap, topics.dlt, topics.events, sample)
    await browser.sign_in(OPERATOR, PASSWORD)
    page = await browser.open("/letters?tenant=1001%2FACME&stage=validation")
    assert "1 dead letter(s) match." in page, page
    first = browser.driver.current_window_handle
    browser.driver.switch_to.new_window("tab")
    await browser.open("/letters?tenant=1001%2FACME&stage=validation")

    assert "Replayed 1 dead letter(s)." in await browser.press("Replay these")
    browser.driver.switch_to.window(first)
    assert "Replayed 0 dead letter(s)." in await browser.press("Replay these")

    sent = [r for r in await everything_in(kafka_bootstrap, topics.events) if r.key == b"c-1"]
    assert len(sent) == 1 and sent[0].value == sample[0].value


async def test_a_tenant_paused_on_the_page_gets_no_call_until_resumed(
    running_service,
    browser: Browser,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    sandbox,
) -> None:
    await browser.sign_in(OPERATOR, PASSWORD)
    await browser.open("/tenants")
    await browser.fill("reason", "month-end close")
    assert f"Paused {CUSTOMER}/{COMPANY}" in await browser.press("Pause")
    page = await browser.open("/tenants")
    assert "PAUSED since" in page and "month-end close" in page, page

    async with running_service():
        await produce(
            kafka_bootstrap,
            topics.events,
            [(f"c{n}".encode(), event(f"c{n}", contact(n))) for n in range(3)],
        )

        async def untouched() -> bool:
            return (await sandbox_stats(sandbox))["calls"] == 0 and not collector.messages[
                topics.replies
            ]

        await throughout(untouched, 2, "no call and no answer while paused")
        await browser.fill("reason", "close done")
        assert f"Resumed {CUSTOMER}/{COMPANY}" in await browser.press("Resume")
        replies = await collector.wait_for(topics.replies, 3)
    assert all(r.json()["response"] == "SUCCESS" for r in replies)
    assert (await sandbox_stats(sandbox))["calls"] >= 1
    page = await browser.open("/tenants")
    assert "flowing" in page and "Last resume by ann" in page and "close done" in page, page
