"""The same ``event_id`` twice among a tenant's queued records (a producer's retry, a replay):
the later copy waits for the earlier one's verdict and is answered from the ledger. The whole
serial lane (scheduler, turns, holds) over the in-memory locks and ledger that keep the
Redis-backed ones' contracts (``tests/support/memory_state.py``), and a scripted Connector."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from service.answers.outcomes import Outcome, Stage
from service.connector.results import CallResult, Delivered, Rejected, Unknown
from service.lanes import Delivery
from service.lanes.breaker import Breakers
from service.lanes.retry import Backoff
from service.lanes.serial import ArrayRule, SerialLane, SerialPolicy
from service.lanes.serial.worker import front_group
from service.tenants import Tenant
from tests.support.lanes import never_doubtful
from tests.support.memory_state import MemoryLedger, MemoryLocks, MemoryRedis

TENANT = Tenant("1001", "ACME", SecretStr("token"))
ENDPOINT = "/accountsReceivable"


@dataclass
class Connector:
    """Answers each record by its ``Memo``: ``refuse`` is refused, ``lost`` gets no answer."""

    records: list[dict[str, Any]] = field(default_factory=list)

    async def post(
        self, tenant: Tenant, endpoint: str, payload: bytes, *, fence: int | None = None
    ) -> CallResult:
        body = orjson.loads(payload)
        records = body if isinstance(body, list) else [body]
        self.records += records
        memos = [r.get("Memo") for r in records]
        if "lost" in memos:
            return Unknown("read timeout")
        if "refuse" in memos:
            return Rejected("Memo: refused", record_index=memos.index("refuse"))
        return Delivered({})


def copy(event_id: str, ticket: str, **record: Any) -> Delivery[str]:
    return Delivery(ticket, TENANT, ENDPOINT, {"No": event_id, **record}, event_id=event_id)


async def serve(
    queued: Sequence[Delivery[str]], batch_max: int
) -> tuple[dict[str, Outcome], Connector]:
    """Queue every record at once, as behind a paused company, and let the lane answer them."""
    connector = Connector()
    answered: dict[str, Outcome] = {}
    dropped: list[str] = []

    def sink(pairs: Sequence[tuple[str, Outcome]]) -> None:
        for ticket, outcome in pairs:
            assert ticket not in answered, f"{ticket} answered twice"
            answered[ticket] = outcome

    store = MemoryRedis()
    lane: SerialLane[str] = SerialLane(
        connector.post,
        sink,
        MemoryLocks(store),
        MemoryLedger(store),
        SerialPolicy(
            lock_wait_s=1, max_attempts=1, backoff=Backoff(0.0), call_timeout_s=1, settle_s=0.0
        ),
        Breakers(5, 1.0),
        doubtful=never_doubtful,
        on_dropped=dropped.extend,
        arrays={ENDPOINT: ArrayRule(batch_max)},
    )
    for delivery in queued:
        lane.submit(delivery)
    await asyncio.wait_for(lane.drain(), 10)
    await lane.close()
    assert dropped == [], "nothing is dropped"
    return answered, connector


def the_issues_queue() -> list[Delivery[str]]:
    """22 records: inv-5 twice back to back, inv-9 twice with different data."""
    queued: list[Delivery[str]] = []
    for n in range(20):
        queued.append(copy(f"inv-{n}", f"inv-{n}", Amount=n))
        if n == 5:
            queued.append(copy("inv-5", "inv-5 again", Amount=5))
        if n == 9:
            queued.append(copy("inv-9", "inv-9 changed", Amount=999))
    return queued


@pytest.mark.parametrize("batch_max", [1, 10], ids=["one-per-call", "arrays"])
async def test_every_copy_is_answered_and_each_event_is_sent_once(batch_max: int) -> None:
    answered, connector = await serve(the_issues_queue(), batch_max)
    assert len(answered) == 22
    assert all(answered[f"inv-{n}"].ok for n in range(20))
    assert answered["inv-5 again"].ok, "same data, delivered: SUCCESS from the ledger"
    changed = answered["inv-9 changed"]
    assert not changed.ok and changed.stage is Stage.VALIDATION
    assert "already used" in (changed.message or "")
    sent = Counter(r["No"] for r in connector.records)
    assert sent["inv-5"] == 1 and sent["inv-9"] == 1 and len(sent) == 20


async def test_a_copy_of_a_record_left_in_doubt_is_answered_in_doubt_and_not_sent() -> None:
    queued = [copy("inv-1", "first", Memo="lost"), copy("inv-1", "again", Memo="lost")]
    answered, connector = await serve(queued, batch_max=10)
    assert answered["first"].stage is Stage.UNKNOWN_OUTCOME
    assert answered["again"].stage is Stage.UNKNOWN_OUTCOME
    assert len(connector.records) == 1


async def test_a_copy_of_a_refused_record_is_judged_by_its_own_call() -> None:
    """A refusal withdraws the intent: the copy is new to the ledger, so it is sent (a producer
    may resend fixed data under the same event_id) and answered by the Connector."""
    queued = [copy("inv-1", "first", Memo="refuse"), copy("inv-1", "fixed", Memo="ok")]
    answered, connector = await serve(queued, batch_max=10)
    assert answered["first"].stage is Stage.CONNECTOR
    assert answered["fixed"].ok
    assert [r["Memo"] for r in connector.records] == ["refuse", "ok"]


def test_a_turn_ends_before_a_second_copy_of_an_event_it_carries() -> None:
    queued = [copy("a", "a"), copy("b", "b"), copy("a", "a again"), copy("c", "c")]
    assert [d.ticket for d in front_group(queued, 10)] == ["a", "b"]
    assert [d.ticket for d in front_group(queued[2:], 10)] == ["a again", "c"]
