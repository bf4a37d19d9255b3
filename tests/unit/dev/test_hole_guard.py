"""HoleGuard: a live reader notices a record Tansu skipped and reads it again."""

from __future__ import annotations

from dataclasses import dataclass

from service.dev.devstack import HoleGuard


@dataclass
class Record:
    offset: int


def records(*offsets: int) -> list[Record]:
    return [Record(o) for o in offsets]


def test_contiguous_offsets_pass_through() -> None:
    guard: HoleGuard[Record] = HoleGuard()
    assert guard.accept("p0", records(0, 1, 2)) == (records(0, 1, 2), None)
    assert guard.accept("p0", records(3, 4)) == (records(3, 4), None)
    assert guard.accept("p1", records(0)) == (records(0), None)  # partitions are separate
    assert guard.holes == 0


def test_a_hole_asks_for_a_seek_back_and_the_records_come_once() -> None:
    guard: HoleGuard[Record] = HoleGuard()
    assert guard.accept("p0", records(0, 1, 3, 4)) == (records(0, 1), 2)
    assert guard.holes == 1
    assert guard.accept("p0", records(4)) == ([], 2)  # still hidden: seek back again
    assert guard.accept("p0", records(1, 2, 3, 4)) == (records(2, 3, 4), None)
    assert guard.accept("p0", records(5)) == (records(5), None)


def test_a_hole_at_the_start_of_a_partition() -> None:
    guard: HoleGuard[Record] = HoleGuard()
    assert guard.accept("p0", records(1, 2)) == ([], 0)
    assert guard.accept("p0", records(0, 1, 2)) == (records(0, 1, 2), None)
