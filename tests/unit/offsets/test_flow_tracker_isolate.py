"""Pure decisions: flow control watermarks, committable offsets, how a rejected batch splits."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from service.lanes.isolate import split_plan
from service.offsets.flow import FlowControl
from service.offsets.tracker import OffsetTracker


def test_fetching_pauses_at_the_high_watermark_and_resumes_at_the_low() -> None:
    flow = FlowControl(high=100)
    assert flow.consumed(99) is False
    assert flow.consumed(1) is True
    assert flow.consumed(10) is False  # already paused
    assert flow.answered(50) is False  # 60 open, low is 50
    assert flow.answered(10) is True
    assert flow.paused is False


def test_bytes_pause_fetching_too_and_both_must_fall_to_resume() -> None:
    flow = FlowControl(high=5000, high_bytes=64_000_000)
    assert flow.consumed(100, 40_000_000) is False
    assert flow.consumed(100, 24_000_000) is True  # 200 records, but 64 MB
    assert flow.answered(50, 20_000_000) is False  # 44 MB open: above half the bytes
    assert flow.answered(10, 12_000_000) is True  # 32 MB
    assert (flow.open, flow.open_bytes, flow.paused) == (140, 32_000_000, False)


def test_commit_position_stops_at_the_first_unanswered_offset() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    for offset in range(10, 15):
        tracker.consumed("p0", offset)
    tracker.answered("p0", 12)
    tracker.answered("p0", 13)
    assert tracker.committable() == {"p0": 10}
    tracker.answered("p0", 10)
    tracker.answered("p0", 11)
    assert tracker.committable() == {"p0": 14}
    tracker.mark_committed({"p0": 14})
    assert tracker.committable() == {}
    tracker.answered("p0", 14)
    assert tracker.committable() == {"p0": 15}
    assert tracker.pending() == 0


def test_partitions_are_tracked_independently_and_forgotten_on_revoke() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.consumed("a", 0)
    tracker.consumed("b", 0)
    tracker.answered("b", 0)
    assert tracker.committable() == {"a": 0, "b": 1}
    assert tracker.pending({"a"}) == 1
    tracker.forget({"a"})
    tracker.answered("a", 0)  # a late answer for a revoked partition changes nothing
    assert tracker.committable() == {"b": 1}


@dataclass
class _Placed:
    partition: str
    offset: int


def test_a_batch_answered_at_once_moves_each_partition_as_one_by_one_would() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    for partition in ("a", "b", "c"):
        for offset in range(5):
            tracker.consumed(partition, offset)
    tracker.forget({"c"})
    answered = [_Placed("a", 1), _Placed("b", 0), _Placed("a", 0), _Placed("c", 0)]
    tracker.answered_all([*answered, _Placed("b", 1), _Placed("a", 3), _Placed("b", 4)])
    assert tracker.committable() == {"a": 2, "b": 2}  # c was revoked: its answer is stale
    assert tracker.pending() == 4
    tracker.answered_all([_Placed("b", 3), _Placed("b", 2), _Placed("a", 2), _Placed("a", 4)])
    assert tracker.committable() == {"a": 5, "b": 5}
    assert tracker.pending() == 0


@pytest.mark.parametrize(
    ("size", "hint", "expected"),
    [
        (1, None, [(0, 1)]),
        (10, None, [(0, 5), (5, 10)]),
        (10, 0, [(0, 1), (1, 10)]),
        (10, 9, [(0, 9), (9, 10)]),
        (10, 4, [(0, 4), (4, 5), (5, 10)]),
        (10, 42, [(0, 5), (5, 10)]),  # a hint outside the batch is ignored
    ],
)
def test_split_plan_cuts_around_the_named_record_or_bisects(
    size: int, hint: int | None, expected: list[tuple[int, int]]
) -> None:
    assert [(s.start, s.stop) for s in split_plan(size, hint)] == expected


async def test_records_held_behind_an_identity_in_flight_do_not_spin_the_loop() -> None:
    """Two updates of one row with a tiny wait: the second must wait for the first call's end
    without re-arming a zero-delay timer over and over."""
    import asyncio

    from pydantic import SecretStr

    from service.connector.results import Delivered
    from service.lanes import Delivery
    from service.lanes.batch import BatchLane, BatchPolicy
    from service.lanes.breaker import Breakers
    from service.lanes.retry import Backoff
    from service.tenants import Tenant

    release, started = asyncio.Event(), asyncio.Event()
    calls: list[int] = []

    async def post(tenant: Tenant, endpoint: str, payload: bytes) -> Delivered:
        calls.append(len(payload))
        started.set()
        await release.wait()
        return Delivered({"response": "SUCCESS"})

    answered: list[object] = []
    lane: BatchLane[str] = BatchLane(
        post,
        lambda results: answered.extend(t for t, _ in results),
        BatchPolicy(
            batch_max=10, batch_wait_s=0.0, concurrency=4, max_attempts=1, backoff=Backoff(0.0)
        ),
        Breakers(5, 1.0),
    )
    tenant = Tenant("1", "A", SecretStr("t"))
    lane.submit([Delivery("v1", tenant, "/x", {"k": 1}, identity=("row",))])
    await asyncio.wait_for(started.wait(), 5)  # v1's call is in flight
    fired = 0
    on_timer = lane._on_timer

    def counting(buffer: object) -> None:
        nonlocal fired
        fired += 1
        on_timer(buffer)  # type: ignore[arg-type]

    lane._on_timer = counting  # type: ignore[method-assign]
    lane.submit([Delivery("v2", tenant, "/x", {"k": 2}, identity=("row",))])
    for _ in range(50):
        await asyncio.sleep(0)
    assert fired <= 1, f"the flush timer fired {fired} times while v2 waited"
    assert len(calls) == 1
    release.set()
    await lane.drain()
    assert answered == ["v1", "v2"] and len(calls) == 2
