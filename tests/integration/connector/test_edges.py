"""What sits in front of the Connector and what it says about itself: a gateway that refuses the
token (plain 401, no envelope), and a ``Retry-After`` on a 429 or 503. The service runs in this
process against the real broker, Redis and the sandbox over HTTP; the sandbox's own call log
(status and arrival time of every call) is the judge — the tests never sleep."""

from __future__ import annotations

from typing import Any

import pytest

from service.dev.events import contact, event, produce
from service.dev.sandbox.client import sandbox_get, sandbox_post, stored_records
from service.dev.topics import Topics
from tests.support.kafka import Collector, everything_in

INVOICES = "/accountsReceivable"


def invoice(n: int) -> dict[str, object]:
    return {"InvoiceNo": f"INV{n:06d}", "CustomerNo": "ABC", "Amount": 100 + n}


async def calls(sandbox: Any) -> list[dict[str, Any]]:
    """The sandbox's call log, in the order the calls arrived."""
    logged = (await sandbox_get(sandbox, "/_sandbox/calls"))["calls"]
    return sorted(logged, key=lambda call: call["call"])


async def test_a_gateways_plain_401_leaves_nothing_in_doubt_and_the_invoices_wait_for_it(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    """Three plain-text 401s from a gateway ahead of the Connector: the token was refused before
    anything was processed, so the tenant's breaker opens and its invoices wait. Once the
    gateway lets calls through, every invoice is delivered once; none is ``unknown_outcome``,
    none dead-lettered, and no settle period is needed."""
    await sandbox_post(sandbox, "/_sandbox/faults", {"gateway_401": 3})
    events = [(b"acct", event(f"inv-{n}", invoice(n), type="ar_invoice.create")) for n in range(5)]
    async with running_service(breaker_cooldown_ms=50, settle_after_unknown_s=600):
        await produce(kafka_bootstrap, topics.events, events)
        replies = await collector.wait_for(topics.replies, 5)
        dead = await everything_in(kafka_bootstrap, topics.dlt)
    answers = {r.json()["event_id"]: (r.json()["response"], r.json().get("stage")) for r in replies}
    assert answers == {f"inv-{n}": ("SUCCESS", None) for n in range(5)}, answers
    assert len(replies) == 5 and dead == []
    log = await calls(sandbox)
    assert [c["status"] for c in log] == [401, 401, 401] + [200] * 5, log
    stored = [r["record"]["InvoiceNo"] for r in await stored_records(sandbox, INVOICES)]
    assert stored == [f"INV{n:06d}" for n in range(5)]


@pytest.mark.parametrize(
    ("kind", "status"),
    [("invoice", 429), ("invoice", 503), ("contact", 429), ("contact", 503)],
    ids=["serial-429", "serial-503", "batch-429", "batch-503"],
)
async def test_a_retry_after_of_three_seconds_is_obeyed_in_both_lanes(
    running_service,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    sandbox,
    kind: str,
    status: int,
) -> None:
    """The backoff here is 20 ms; the server asked for 3 s, so the next call arrives no sooner
    than 3 s after the throttled one, by the sandbox's own clock."""
    await sandbox_post(
        sandbox,
        "/_sandbox/faults",
        {"throttle_count": 1, "throttle_status": status, "retry_after": "3"},
    )
    if kind == "invoice":
        sent = event("inv-1", invoice(1), type="ar_invoice.create")
    else:
        sent = event("c-1", contact(1))
    async with running_service():
        await produce(kafka_bootstrap, topics.events, [(b"k", sent)])
        [reply] = await collector.wait_for(topics.replies, 1)
    assert reply.json()["response"] == "SUCCESS" and reply.json()["attempts"] == 2, reply.json()
    throttled, accepted = await calls(sandbox)
    assert (throttled["status"], accepted["status"]) == (status, 200)
    assert accepted["received_s"] - throttled["received_s"] >= 3.0, (throttled, accepted)
