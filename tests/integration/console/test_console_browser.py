"""The operators' console in a real browser, against the real broker, Redis, sandbox and
service: the unknown-outcome runbook done by an accountant, a filtered set of dead letters
replayed once from two tabs, and a tenant paused and resumed from the page."""

from __future__ import annotations

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
from tests.support.waiting import throughout

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
        row = f"{CUSTOMER}/{COMPANY} flowing 1 unknown_outcome 1"  # one in doubt, one letter
        assert row in overview.splitlines(), overview
        page = await browser.open("/in-doubt")
        assert "inv-1" in page and f"Tenant {CUSTOMER}/{COMPANY}" in page, page
        assert "answered SUCCESS without calling Sage again" in page  # what "delivered" does
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
