"""The serial turn's decisions, one record or an array, against in-memory locks and ledger that
keep the Redis-backed ones' contracts (``tests/support/memory_state.py``): what is sent, what is
answered from the ledger, what is left in doubt, and what waits for its ledger write."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from service.answers.outcomes import Outcome, Stage
from service.connector.results import CallResult, Delivered, Rejected, Unknown
from service.errors import StateUnavailable
from service.lanes import Delivery
from service.lanes.breaker import Breakers
from service.lanes.retry import Backoff, Retries
from service.lanes.serial.hold import Bookkeeping, Hold
from service.lanes.serial.turn import ArrayRule, Served, Turn
from service.state.ledger import fingerprint
from service.tenants import Tenant
from tests.support.memory_state import MemoryLedger, MemoryLocks, MemoryRedis

TENANT = Tenant("1001", "ACME", SecretStr("token"))
ENDPOINT = "/accountsReceivable"
ONE = ArrayRule()


@dataclass
class Stage_:
    """One hold over in-memory state, a scripted Connector, and what the lane said."""

    answers: Sequence[CallResult]
    doubtful: set[str] = field(default_factory=set)
    store: MemoryRedis = field(default_factory=MemoryRedis)
    calls: list[Any] = field(default_factory=list)
    answered: list[tuple[str, Outcome]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    hits: int = 0

    def __post_init__(self) -> None:
        self.locks = MemoryLocks(self.store)
        self.ledger = MemoryLedger(self.store)
        self.books: Bookkeeping[str] = Bookkeeping(
            self.ledger, self.locks, self.answered.extend, self.dropped.extend,
            settle_s=0.0, redis_retry_s=0.0,
        )  # fmt: skip
        self.turn: Turn[str] = Turn(
            self._post,
            Breakers(5, 1.0),
            Retries(2, Backoff(0.0), retry_unknown=False, wait_out_outage=False),
            call_margin_s=1.0,
            doubtful=self._doubtful,
            ledger_hit=self._hit,
        )

    async def hold(self) -> Hold[str]:
        lease = await self.locks.try_acquire(TENANT.key)
        assert lease is not None
        return Hold(lease, self.books)

    async def take(
        self, hold: Hold[str], group: list[Delivery[str]], rule: ArrayRule = ONE
    ) -> Served[str]:
        return await self.turn.take(hold, group, rule)

    async def _post(
        self, tenant: Tenant, endpoint: str, payload: bytes, *, fence: int | None = None
    ) -> CallResult:
        self.calls.append(orjson.loads(payload))
        return self.answers[len(self.calls) - 1]

    async def _doubtful(self, ticket: str) -> bool:
        return ticket in self.doubtful

    def _hit(self) -> None:
        self.hits += 1

    def stored(self, event_id: str) -> str | None:
        entry = self.store.entries.get(self.ledger.key(TENANT.key, event_id))
        return None if entry is None else entry.state


def invoice(n: int, **record: Any) -> Delivery[str]:
    return Delivery(f"inv-{n}", TENANT, ENDPOINT, record or {"n": n}, event_id=f"inv-{n}")


def stages(answered: list[tuple[str, Outcome]]) -> dict[str, str]:
    return {ticket: "ok" if outcome.ok else str(outcome.stage) for ticket, outcome in answered}


async def test_a_delivered_record_is_answered_only_once_its_result_is_in_the_ledger() -> None:
    stage = Stage_([Delivered({}), Delivered({})])
    hold = await stage.hold()
    served = await stage.take(hold, [invoice(1)])
    assert served.goes_on and [d.ticket for d in served.done] == ["inv-1"]
    assert stage.answered == [] and stage.stored("inv-1") == "intent"
    assert hold.quiet and len(hold.pending) == 1
    await stage.take(hold, [invoice(2)])  # the result rides on the next begin
    assert stage.stored("inv-1") == "delivered"
    assert stages(stage.answered) == {"inv-1": "ok"}


async def test_a_redelivered_record_is_answered_from_the_ledger_without_a_call() -> None:
    stage = Stage_([Delivered({})])
    hold = await stage.hold()
    await stage.take(hold, [invoice(1)])
    await hold.write_pending()
    again = await stage.take(hold, [invoice(1)])
    assert len(stage.calls) == 1 and stage.hits == 1 and again.goes_on
    assert [o.ok for _, o in stage.answered] == [True, True]


async def test_an_event_id_reused_with_other_data_is_refused_without_a_call() -> None:
    stage = Stage_([Delivered({})])
    hold = await stage.hold()
    await stage.take(hold, [invoice(1, amount=10)])
    await hold.write_pending()
    await stage.take(hold, [invoice(1, amount=99)])
    assert len(stage.calls) == 1
    assert not stage.answered[-1][1].ok and stage.answered[-1][1].stage is Stage.VALIDATION


async def test_an_unknown_outcome_is_answered_at_once_never_resent_and_ends_the_hold() -> None:
    stage = Stage_([Unknown("read timeout")])
    hold = await stage.hold()
    served = await stage.take(hold, [invoice(1)])
    assert not served.goes_on and [d.ticket for d in served.done] == ["inv-1"]
    assert stages(stage.answered) == {"inv-1": "unknown_outcome"}
    assert stage.stored("inv-1") == "intent", "the intent stays: the record may be in Sage"
    await hold.release()
    redelivered = Stage_([], store=stage.store)  # another process after the crash
    later = await redelivered.hold()
    assert later.lease.occupied is False, "the settle period ran, so the marker went"
    await redelivered.take(later, [invoice(1)])
    assert redelivered.calls == [] and stages(redelivered.answered) == {"inv-1": "unknown_outcome"}


async def test_a_result_superseded_by_another_processs_verdict_is_not_answered() -> None:
    stage = Stage_([Delivered({})])
    hold = await stage.hold()
    await stage.take(hold, [invoice(1)])
    stage.ledger.reported_in_doubt(TENANT.key, "inv-1")  # its verdict was given meanwhile
    await hold.write_pending()
    assert stage.answered == [] and stage.dropped == ["inv-1"]
    assert stage.stored("inv-1") == "intent"


async def test_a_record_new_to_a_ledger_that_lost_data_is_not_sent() -> None:
    stage = Stage_([Delivered({})], doubtful={"inv-1"})
    hold = await stage.hold()
    served = await stage.take(hold, [invoice(1)])
    assert stage.calls == [] and served.goes_on
    assert stages(stage.answered) == {"inv-1": "unknown_outcome"}


async def test_no_call_starts_under_a_lease_another_replica_took_over() -> None:
    stage = Stage_([Delivered({})])
    hold = await stage.hold()
    stage.locks.take_over(TENANT.key)
    served = await stage.take(hold, [invoice(1)])
    assert served == Served([], False) and stage.calls == [] and hold.lease.lost
    assert stage.stored("inv-1") is None, "nothing was written"


async def test_a_record_that_cannot_be_encoded_is_answered_alone() -> None:
    stage = Stage_([Delivered({})])
    hold = await stage.hold()
    served = await stage.take(hold, [invoice(1, bad={1, 2})])
    assert served.goes_on and stage.calls == []
    assert stages(stage.answered) == {"inv-1": "validation"}


async def test_a_refused_record_is_answered_after_its_intent_is_withdrawn() -> None:
    stage = Stage_([Rejected("CustomerNo unknown")])
    hold = await stage.hold()
    await stage.take(hold, [invoice(1)])
    await hold.write_pending()
    assert stage.stored("inv-1") is None, "withdrawn: fixed data may come again"
    assert stages(stage.answered) == {"inv-1": "connector"}


async def test_an_array_leaves_out_what_the_ledger_answers_and_sends_the_rest_as_one_call() -> None:
    stage = Stage_([Delivered({}), Delivered({})])
    hold = await stage.hold()
    await stage.take(hold, [invoice(2)])
    served = await stage.take(hold, [invoice(1), invoice(2), invoice(3)], ArrayRule(3))
    assert stage.calls == [{"n": 2}, [{"n": 1}, {"n": 3}]]
    assert len(served.done) == 3 and served.goes_on
    await hold.write_pending()
    assert stages(stage.answered) == {"inv-1": "ok", "inv-2": "ok", "inv-3": "ok"}
    assert {stage.stored(f"inv-{n}") for n in (1, 2, 3)} == {"delivered"}


async def test_an_atomic_array_refused_at_one_record_is_split_and_its_parts_judged_alone() -> None:
    answers = [
        Rejected("record 1: bad", record_index=1),
        Delivered({}),
        Rejected("bad"),
        Delivered({}),
    ]
    stage = Stage_(answers)
    hold = await stage.hold()
    await stage.take(hold, [invoice(n) for n in range(3)], ArrayRule(3, atomic=True))
    await hold.write_pending()
    assert stage.calls[0] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert stages(stage.answered) == {"inv-0": "ok", "inv-1": "connector", "inv-2": "ok"}
    assert [stage.stored(f"inv-{n}") for n in range(3)] == ["delivered", None, "delivered"]


async def test_a_refused_array_that_may_have_stored_some_records_puts_all_in_doubt() -> None:
    stage = Stage_([Rejected("record 1: bad", record_index=1)])
    hold = await stage.hold()
    served = await stage.take(hold, [invoice(n) for n in range(3)], ArrayRule(3, atomic=False))
    assert len(stage.calls) == 1 and len(served.done) == 3
    assert set(stages(stage.answered).values()) == {"unknown_outcome"}
    assert {stage.stored(f"inv-{n}") for n in range(3)} == {"intent"}


async def test_an_array_whose_outcome_is_unknown_puts_every_record_in_doubt() -> None:
    stage = Stage_([Unknown("connection dropped")])
    hold = await stage.hold()
    served = await stage.take(hold, [invoice(1), invoice(2)], ArrayRule(2))
    assert not served.goes_on and len(served.done) == 2
    assert stages(stage.answered) == {"inv-1": "unknown_outcome", "inv-2": "unknown_outcome"}


async def test_the_digest_the_ledger_keeps_is_the_records_fingerprint() -> None:
    stage = Stage_([Delivered({})])
    hold = await stage.hold()
    await stage.take(hold, [invoice(1, amount=5)])
    entry = stage.store.entries[stage.ledger.key(TENANT.key, "inv-1")]
    assert entry.fingerprint == fingerprint({"amount": 5})


async def test_a_redis_pause_is_logged_with_the_redis_error_behind_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The state layer's ``StateUnavailable`` carries the Redis error's name: the log says
    which, so a full pool reads differently from a Redis that is down."""
    books = Stage_(answers=[]).books
    with caplog.at_level(logging.ERROR, logger="service.lanes.serial"):
        await books.redis_down("acquire", StateUnavailable("MaxConnectionsError"))
    [record] = [r for r in caplog.records if r.getMessage().startswith("Redis unreachable")]
    assert record.__dict__["cause"] == "MaxConnectionsError"
    assert record.__dict__["error"] == "StateUnavailable"
