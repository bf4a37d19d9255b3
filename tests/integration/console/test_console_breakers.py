"""The Overview shows each tenant's Connector breaker as the service's replicas report it: a
tenant whose token the Connector refuses is shown open on the replica that called it, with when
it opened, and closed again once the Connector takes calls."""

from __future__ import annotations

import re

import httpx

from service.dev.events import contact, event, produce
from service.dev.sandbox.client import sandbox_post
from service.dev.topics import Topics
from service.state.breaker_reports import BreakerReports
from tests.conftest import COMPANY, CUSTOMER
from tests.support.kafka import Collector
from tests.support.waiting import until

TENANT = f"{CUSTOMER}/{COMPANY}"


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).strip()


async def breaker_cell(client: httpx.AsyncClient) -> str:
    """What the Overview's "Connector breaker" column says of the tenant, as a person reads it."""
    page = await client.get("/")
    assert page.status_code == 200, page.text
    for row in re.findall(r"<tr>(.*?)</tr>", page.text, re.DOTALL):
        cells = [text_of(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)]
        if cells and cells[0] == TENANT:
            return cells[2]
    raise AssertionError(f"no row for {TENANT}: {text_of(page.text)}")


async def test_a_refused_token_opens_the_breaker_on_the_overview_until_recovery(
    running_service,
    signed_in: httpx.AsyncClient,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    sandbox,
    redis,
    redis_prefix: str,
) -> None:
    # A second replica, all its breakers closed: the page counts replicas, not just the open.
    await BreakerReports(redis, redis_prefix).publish("other-pod/1/ab12", {}, 600)
    await sandbox_post(sandbox, "/_sandbox/faults", {"gateway_401": 100_000})
    async with running_service(breaker_cooldown_ms=100):
        assert await breaker_cell(signed_in) == "closed"
        await produce(kafka_bootstrap, topics.events, [(b"c-1", event("c-1", contact(1)))])

        async def shown_open() -> bool:
            return (await breaker_cell(signed_in)).startswith("OPEN on 1 of 2 replicas, since ")

        await until(shown_open, 60, "the Overview to show the breaker open")
        assert re.fullmatch(
            r"OPEN on 1 of 2 replicas, since \d{4}-\d\d-\d\dT[\d:.]+Z",
            await breaker_cell(signed_in),
        )
        assert not collector.messages[topics.replies], "the record waits, unanswered"

        await sandbox_post(sandbox, "/_sandbox/faults", {"gateway_401": 0})
        [reply] = await collector.wait_for(topics.replies, 1)
        assert reply.json()["response"] == "SUCCESS", reply.json()

        async def shown_closed() -> bool:
            return await breaker_cell(signed_in) == "closed"

        await until(shown_closed, 60, "the Overview to show the breaker closed again")
