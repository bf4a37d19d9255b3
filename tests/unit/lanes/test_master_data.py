"""Master data around the batch lane, without Redis or HTTP: what reaches the ledger and the
sink when calls end."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import SecretStr

from service.answers.outcomes import Outcome
from service.connector.results import Delivered
from service.intake.admit import Admitted
from service.intake.envelope import Event
from service.intake.routes import Lane, Route
from service.lanes.batch import BatchPolicy
from service.lanes.breaker import Breakers
from service.lanes.master_data import MasterData
from service.lanes.retry import Backoff
from service.state.ledger import EntryState, LedgerEntry
from service.tenants import Tenant, TenantKey


class _Ledger:
    """The batch lane's part of the ledger: every record new, every step noted."""

    def __init__(self) -> None:
        self.delivered: list[list[str]] = []

    async def begin_many(self, keys: list[tuple[TenantKey, str, str]]) -> list[LedgerEntry]:
        return [LedgerEntry(EntryState.NEW)] * len(keys)

    async def delivered_many(self, entries: list[tuple[TenantKey, str, str, int]]) -> None:
        self.delivered.append([event_id for _, event_id, _, _ in entries])

    async def withdraw_many(self, keys: list[tuple[TenantKey, str]]) -> None:
        raise AssertionError("nothing is refused here")


def _admitted(tenant: Tenant, route: Route, n: int) -> Admitted:
    event = Event(f"e-{tenant.company}-{n}", route.type, {"n": n}, f"e-{n}")
    return Admitted(event, route, tenant, identity=None)


async def test_calls_ending_in_one_turn_are_recorded_in_one_ledger_step() -> None:
    """Two companies' arrays are called side by side and answered in the same turn of the
    event loop: their records go into the ledger in one step, and every one is answered."""
    ends, both_called = asyncio.Event(), asyncio.Event()
    calls: list[str] = []

    async def post(tenant: Tenant, endpoint: str, payload: bytes) -> Delivered:
        calls.append(tenant.company)
        if len(calls) == 2:
            both_called.set()
        await ends.wait()  # both calls end when the test says so, in one turn
        return Delivered({"response": "SUCCESS"})

    answered: list[tuple[str, Outcome]] = []
    ledger = _Ledger()

    async def never(ticket: object) -> bool:
        return False

    async def not_in_sage(*args: Any) -> bool:
        return False

    master_data: MasterData[str] = MasterData(
        post,
        BatchPolicy(
            batch_max=3, batch_wait_s=60.0, concurrency=1, max_attempts=1, backoff=Backoff(0.0)
        ),
        Breakers(5, 1.0),
        ledger,  # type: ignore[arg-type]
        not_in_sage,
        answered.extend,
        on_dropped=lambda tickets: None,
        may_doubt=lambda: False,
        doubtful=never,
        on_ledger_hit=lambda: None,
        on_call=lambda size: None,
    )
    route = Route("contact.upsert", Lane.BATCH, "/customerContacts", None)
    companies = [Tenant("1", "A", SecretStr("a")), Tenant("1", "B", SecretStr("b"))]
    items = [(f"t-{t.company}-{n}", _admitted(t, route, n)) for t in companies for n in range(3)]
    assert await master_data.submit(items) == []
    await asyncio.wait_for(both_called.wait(), 5)  # both arrays are in their calls
    ends.set()
    await master_data.drain()
    assert [ticket for ticket, _ in answered] == [ticket for ticket, _ in items]
    assert all(outcome.ok for _, outcome in answered)
    assert ledger.delivered == [[admitted.event.event_id for _, admitted in items]]
