"""Pure decisions: flow control watermarks, committable offsets, how a rejected batch splits."""

from __future__ import annotations

import pytest

from service.flow import FlowControl
from service.lanes.isolate import split_plan
from service.offsets import OffsetTracker


def test_fetching_pauses_at_the_high_watermark_and_resumes_at_the_low() -> None:
    flow = FlowControl(high=100)
    assert flow.took(99) is False
    assert flow.took(1) is True
    assert flow.took(10) is False  # already paused
    assert flow.answered(50) is False  # 60 open, low is 50
    assert flow.answered(10) is True
    assert flow.paused is False


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
