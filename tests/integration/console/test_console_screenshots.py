"""Every console page at desktop (1280 px) and phone (390 px) widths, with something on it, saved
for a person to look at (layout is judged by eye).

The screenshots go to the test's own directory, so a test run never rewrites the checkout; with
``SAGEBRIDGE_REFRESH_SCREENSHOTS=1`` they replace the ones in docs/console/ (after a change to the
console's look)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.dev.events import contact, event, produce
from service.dev.sandbox.client import sandbox_post
from service.dev.topics import Topics
from tests.integration.console.conftest import OPERATOR, PASSWORD
from tests.integration.tools import letters
from tests.support.browser import DESKTOP, PHONE, Browser
from tests.support.kafka import Collector
from tests.support.waiting import until

DOCS = Path(__file__).resolve().parents[3] / "docs" / "console"
REFRESH = os.environ.get("SAGEBRIDGE_REFRESH_SCREENSHOTS") == "1"
PAGES = {
    "overview": "/",
    "dead-letters": "/letters",
    "dead-letter": "/letters/0/0",
    "in-doubt": "/in-doubt",
    "event-history": "/events?event_id=inv-1",
    "tenants": "/tenants",
}


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where this run's screenshots go: docs/console/ only when asked to refresh them."""
    if not REFRESH:
        return tmp_path
    DOCS.mkdir(parents=True, exist_ok=True)
    return DOCS


def pictures(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png"))


async def shoot(browser: Browser, shots: Path, name: str, path: str) -> None:
    """``path`` at both widths, saved as ``name`` in ``shots``; it must not scroll sideways."""
    page = await browser.open(path)
    assert "Something went wrong" not in page and "Cannot" not in page, (name, page)
    for width, size in (("desktop", DESKTOP), ("phone", PHONE)):
        await browser.screenshot(shots / f"{name}-{width}.png", size)
        overflow = browser.driver.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0, f"{name} at {width} width scrolls sideways"


async def test_each_page_at_desktop_and_phone_widths(
    running_service,
    browser: Browser,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    sandbox,
    shots: Path,
) -> None:
    await letters.write(kafka_bootstrap, topics.dlt, topics.events, letters.sample())
    await sandbox_post(sandbox, "/_sandbox/faults", {"store_then_fail_rate": 1.0})
    async with running_service(breaker_cooldown_ms=100):
        invoice = {"InvoiceNo": "INV000001", "CustomerNo": "ABC", "Amount": 101}
        await produce(
            kafka_bootstrap,
            topics.events,
            [(b"inv-1", event("inv-1", invoice, type="ar_invoice.create"))],
        )
        await collector.wait_for(topics.replies, 1)
        # A gateway refusing the token opens the tenant's breaker, shown on the Overview.
        await sandbox_post(
            sandbox, "/_sandbox/faults", {"store_then_fail_rate": 0.0, "gateway_401": 100_000}
        )
        await produce(kafka_bootstrap, topics.events, [(b"c-9", event("c-9", contact(9)))])
        await browser.open("/login")
        await browser.screenshot(shots / "sign-in-phone.png", PHONE)
        await browser.sign_in(OPERATOR, PASSWORD)

        async def breaker_shown() -> bool:
            return "OPEN on 1 of 1 replica" in await browser.open("/")

        await until(breaker_shown, 60, "the Overview to show the open breaker")
        await shoot(browser, shots, "overview", "/")
        await sandbox_post(sandbox, "/_sandbox/faults", {"gateway_401": 0})
        # The held contact goes once the breaker closes: only inv-1 is left in doubt.
        await collector.wait_for(topics.replies, 2)
    for name, path in PAGES.items():
        if name != "overview":
            await shoot(browser, shots, name, path)
    expected = sorted(
        [f"{n}-{w}.png" for n in PAGES for w in ("desktop", "phone")] + ["sign-in-phone.png"]
    )
    assert pictures(shots) == expected
    assert pictures(DOCS) == expected  # the docs show every page
