"""One worker per company in the serial lane, and the company's gate (its breaker, then its
lock), over the in-memory locks and ledger that keep the Redis-backed ones' contracts
(``tests/support/memory_state.py``) and a Connector that holds chosen calls open until told:
a worker ends once its company's queue is empty, withdrawing touches only the unwanted records
(a record inside a call is still answered), and a shutdown gives up what is still queued."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import orjson
from pydantic import SecretStr

from service.answers.outcomes import Outcome
from service.connector.results import CallResult, Delivered
from service.errors import StateUnavailable
from service.lanes import Delivery
from service.lanes.breaker import Breaker, Breakers
from service.lanes.pause import PauseGate
from service.lanes.retry import Backoff, Retries
from service.lanes.serial import SerialLane, SerialPolicy
from service.lanes.serial.gate import CompanyGate
from service.lanes.serial.hold import Bookkeeping
from service.lanes.serial.turn import Turn
from service.lanes.serial.worker import CompanyWorker
from service.state.locks import Lease
from service.tenants import Tenant, TenantKey
from tests.support.lanes import never_doubtful
from tests.support.memory_state import MemoryLedger, MemoryLocks, MemoryRedis

ACME = Tenant("1001", "ACME", SecretStr("token"))
BETA = Tenant("2002", "BETA", SecretStr("token"))
ENDPOINT = "/accountsReceivable"
POLICY = SerialPolicy(
    lock_wait_s=1,
    max_attempts=1,
    backoff=Backoff(0.0),
    call_timeout_s=1,
    settle_s=0.0,
    redis_retry_s=0.0,
)


@dataclass
class Connector:
    """Delivers every record; a call carrying a ticket in ``held`` stays open until
    :meth:`let_go`, and says it has started."""

    held: set[str] = field(default_factory=set)
    sent: list[str] = field(default_factory=list)
    started: dict[str, asyncio.Event] = field(default_factory=dict)
    go: asyncio.Event = field(default_factory=asyncio.Event)

    async def post(
        self, tenant: Tenant, endpoint: str, payload: bytes, *, fence: int | None = None
    ) -> CallResult:
        ticket = orjson.loads(payload)["ticket"]
        self.sent.append(ticket)
        if ticket in self.held:
            self.in_call(ticket).set()
            await self.go.wait()
        return Delivered({})

    def in_call(self, ticket: str) -> asyncio.Event:
        return self.started.setdefault(ticket, asyncio.Event())

    def let_go(self) -> None:
        self.go.set()


def record(tenant: Tenant, ticket: str) -> Delivery[str]:
    return Delivery(ticket, tenant, ENDPOINT, {"ticket": ticket}, event_id=ticket)


@dataclass
class Lane:
    """A serial lane over in-memory state, and what it answered, dropped and waited for."""

    connector: Connector = field(default_factory=Connector)
    store: MemoryRedis = field(default_factory=MemoryRedis)
    answered: dict[str, Outcome] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    lock_waits: int = 0
    policy: SerialPolicy = POLICY

    def __post_init__(self) -> None:
        self.lane: SerialLane[str] = SerialLane(
            self.connector.post,
            self._sink,
            MemoryLocks(self.store),
            MemoryLedger(self.store),
            self.policy,
            Breakers(5, 1.0),
            doubtful=never_doubtful,
            on_dropped=self.dropped.extend,
            on_lock_wait=self._waited,
        )

    def _sink(self, pairs: Sequence[tuple[str, Outcome]]) -> None:
        for ticket, outcome in pairs:
            assert ticket not in self.answered, f"{ticket} answered twice"
            self.answered[ticket] = outcome

    def _waited(self, seconds: float) -> None:
        self.lock_waits += 1

    async def drained(self) -> None:
        await asyncio.wait_for(self.lane.drain(), 10)


async def test_a_companys_next_record_after_its_queue_emptied_gets_a_worker_and_a_lock_anew() -> (
    None
):
    lane = Lane()
    lane.lane.submit(record(ACME, "inv-1"))
    await lane.drained()
    assert lane.store.values == {}, "the worker released the lock when its queue emptied"
    lane.lane.submit(record(ACME, "inv-2"))
    await lane.drained()
    assert set(lane.answered) == {"inv-1", "inv-2"}
    assert lane.lock_waits == 2 and lane.store.values == {}


HAND_BACK_AFTER_EACH_TURN = replace(POLICY, hold_s=0.0, hold_alone_s=60.0)
"""A hold goes back after every turn if another replica waits, after a minute if none does."""


async def test_a_replica_alone_on_a_company_keeps_its_lock_across_turns() -> None:
    lane = Lane(policy=HAND_BACK_AFTER_EACH_TURN)
    for n in range(5):
        lane.lane.submit(record(ACME, f"inv-{n}"))
    await lane.drained()
    assert len(lane.answered) == 5
    assert lane.lock_waits == 1, "one acquisition, one release for the five invoices"
    assert lane.store.values == {}


async def test_a_hold_goes_back_once_its_begin_finds_another_replica_waiting() -> None:
    """Another replica tries the lock while inv-0 is in its call: inv-1's begin finds its
    mark, and the hold goes back after inv-1's turn; the release clears the mark, so the
    next hold keeps the lock for the rest."""
    lane = Lane(Connector(held={"inv-0"}), policy=HAND_BACK_AFTER_EACH_TURN)
    for n in range(5):
        lane.lane.submit(record(ACME, f"inv-{n}"))
    await asyncio.wait_for(lane.connector.in_call("inv-0").wait(), 10)
    assert await MemoryLocks(lane.store).acquire(ACME.key, 0) is None, "ours is held"
    lane.connector.let_go()
    await lane.drained()
    assert len(lane.answered) == 5
    assert lane.lock_waits == 2, "handed back once, after inv-1's turn"
    assert lane.store.values == {}


async def test_withdrawing_drops_only_the_unwanted_records_not_begun() -> None:
    """ACME's inv-1 is inside a call and inv-2 queued behind it when their partition is
    revoked: inv-2 is dropped at once and never sent, inv-1 finishes and is answered. ACME's
    inv-3 and every BETA record are wanted and are delivered."""
    lane = Lane(Connector(held={"inv-1", "b-1"}))
    for delivery in (
        record(ACME, "inv-1"),
        record(ACME, "inv-2"),
        record(ACME, "inv-3"),
        record(BETA, "b-1"),
        record(BETA, "b-2"),
    ):
        lane.lane.submit(delivery)
    await asyncio.wait_for(lane.connector.in_call("inv-1").wait(), 10)
    await asyncio.wait_for(lane.connector.in_call("b-1").wait(), 10)
    lane.lane.withdraw(lambda ticket: ticket in {"inv-1", "inv-2"})
    assert lane.dropped == ["inv-2"]
    lane.connector.let_go()
    await lane.drained()
    assert set(lane.answered) == {"inv-1", "inv-3", "b-1", "b-2"}
    assert all(outcome.ok for outcome in lane.answered.values())
    assert "inv-2" not in lane.connector.sent


async def test_on_shutdown_the_call_in_flight_is_answered_and_the_rest_given_up() -> None:
    lane = Lane(Connector(held={"inv-1"}))
    for n in (1, 2, 3):
        lane.lane.submit(record(ACME, f"inv-{n}"))
    await asyncio.wait_for(lane.connector.in_call("inv-1").wait(), 10)
    lane.lane.stop()
    lane.connector.let_go()
    await lane.drained()
    assert set(lane.answered) == {"inv-1"} and lane.answered["inv-1"].ok
    assert lane.dropped == ["inv-2", "inv-3"]
    assert lane.connector.sent == ["inv-1"] and lane.store.values == {}


def worker_parts(
    connector: Connector, locks: MemoryLocks, answered: list[tuple[str, Outcome]]
) -> tuple[Bookkeeping[str], Turn[str]]:
    books: Bookkeeping[str] = Bookkeeping(
        MemoryLedger(locks.store), locks, answered.extend, lambda tickets: None,
        settle_s=0.0, redis_retry_s=0.0,
    )  # fmt: skip
    turn: Turn[str] = Turn(
        connector.post,
        Breakers(5, 1.0),
        Retries(1, Backoff(0.0), retry_unknown=False, wait_out_outage=False),
        call_margin_s=1.0,
        doubtful=never_doubtful,
        ledger_hit=lambda: None,
    )
    return books, turn


async def test_a_worker_says_it_has_ended_once_its_queue_is_empty_and_the_lock_is_back() -> None:
    connector, locks = Connector(), MemoryLocks(MemoryRedis())
    answered: list[tuple[str, Outcome]] = []
    books, turn = worker_parts(connector, locks, answered)
    gate = CompanyGate(
        ACME.key, Breaker(5, 1.0), locks, books, lock_wait_s=1, on_lock_wait=lambda s: None
    )
    ended = asyncio.Event()
    told: list[CompanyWorker[str]] = []

    def end(worker: CompanyWorker[str]) -> None:
        told.append(worker)
        ended.set()

    worker = CompanyWorker(ACME.key, gate, books, turn, POLICY, {}, ended=end)
    worker.take(record(ACME, "inv-1"))
    worker.take(record(ACME, "inv-2"))
    await asyncio.wait_for(ended.wait(), 10)
    assert told == [worker]
    assert [ticket for ticket, _ in answered] == ["inv-1", "inv-2"]
    assert locks.store.values == {}, "the lock went back before the worker ended"


class FlakyLocks(MemoryLocks):
    """Redis is unreachable for the first ``failures`` acquisitions."""

    def __init__(self, store: MemoryRedis, failures: int) -> None:
        super().__init__(store)
        self.failures = failures

    async def acquire(self, tenant: TenantKey, wait_s: float) -> Lease | None:
        if self.failures:
            self.failures -= 1
            raise StateUnavailable("ConnectionError")
        return await super().acquire(tenant, wait_s)


async def test_the_gate_reports_redis_down_and_grants_nothing_until_it_is_back() -> None:
    locks = FlakyLocks(MemoryRedis(), failures=1)
    books, _ = worker_parts(Connector(), locks, [])
    waits: list[float] = []
    gate = CompanyGate(
        ACME.key, Breaker(5, 1.0), locks, books, lock_wait_s=1, on_lock_wait=waits.append
    )
    assert await gate.enter() is None
    assert not books.redis_ok and waits == []
    lease = await gate.enter()
    assert lease is not None and lease.tenant == ACME.key
    assert books.redis_ok and len(waits) == 1


async def test_the_gate_takes_no_lock_for_a_paused_company_when_the_lane_stops() -> None:
    """The breaker (and the operator's pause) is waited for before the lock: a company paused
    when the lane stops never takes its lock."""
    locks = MemoryLocks(MemoryRedis())
    books, _ = worker_parts(Connector(), locks, [])
    pauses = PauseGate()
    pauses.set_paused({ACME.key})
    breaker = Breaker(5, 1.0, pauses=pauses, tenant=ACME.key)
    gate = CompanyGate(ACME.key, breaker, locks, books, lock_wait_s=1, on_lock_wait=lambda s: None)
    books.stopping.set()
    assert await gate.enter() is None
    assert locks.store.values == {}
