"""The crash-loop breaker's decisions: what a mark left behind says, and how each record of a
replayed poll is taken in."""

from __future__ import annotations

import pytest

from service.intake.crash_loop import (
    Condemn,
    Death,
    Isolate,
    Mark,
    Suspicion,
    Treatment,
    concerns,
    judge,
    treatment,
)

DIGEST = 0xC0FFEE


def never() -> int:
    raise AssertionError("the digest was computed for a record with no deaths counted")


def test_a_mark_left_before_the_replay_is_stale() -> None:
    assert judge(Mark(10, 19), replay_from=20) is None
    assert judge(Mark(15, 15, alone=True, digest=DIGEST), replay_from=16) is None


def test_an_alone_mark_is_a_death_of_its_record() -> None:
    assert judge(Mark(15, 15, alone=True, digest=DIGEST), replay_from=10) == Death(15, DIGEST)


def test_a_poll_mark_is_a_suspicion_from_where_the_replay_starts() -> None:
    assert judge(Mark(10, 19), replay_from=12) == Suspicion(12, 19)
    assert judge(Mark(10, 19), replay_from=5) == Suspicion(10, 19)


def test_records_with_nothing_against_them_go_with_their_poll_unhashed() -> None:
    assert treatment(7, never, None, {}, limit=3) is None
    assert treatment(7, never, Suspicion(10, 19), {12: {DIGEST: 2}}, limit=3) is None


def test_a_suspected_record_is_taken_alone() -> None:
    assert treatment(12, never, Suspicion(10, 19), {}, limit=3) == Isolate()


def test_a_record_with_deaths_is_taken_alone_until_the_limit_then_condemned() -> None:
    assert treatment(12, lambda: DIGEST, None, {12: {DIGEST: 2}}, limit=3) == Isolate()
    assert treatment(12, lambda: DIGEST, None, {12: {DIGEST: 3}}, limit=3) == Condemn(3)


def test_deaths_of_another_record_at_the_same_offset_do_not_count() -> None:
    """A topic deleted and created again reuses offsets; the digest tells the records apart."""
    assert treatment(12, lambda: DIGEST + 1, None, {12: {DIGEST: 5}}, limit=3) is None


def test_a_poll_needs_care_only_where_it_meets_a_suspicion_or_a_counted_death() -> None:
    assert not concerns(0, 9, None, {})
    assert not concerns(0, 9, Suspicion(10, 19), {20: {DIGEST: 1}})
    assert concerns(5, 14, Suspicion(10, 19), {})
    assert concerns(15, 25, None, {20: {DIGEST: 1}})


class Successors:
    """Each process in turn takes over the partition: it judges the mark its predecessor left,
    counts the death it reports, and decides how to take in the record at offset 4 (the replay
    starts at 0)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counted: dict[int, dict[int, int]] = {}

    def take_over(self, left: Mark) -> Treatment:
        verdict = judge(left, replay_from=0)
        if isinstance(verdict, Death):
            at = self.counted.setdefault(verdict.offset, {})
            at[verdict.digest] = at.get(verdict.digest, 0) + 1
        suspicion = verdict if isinstance(verdict, Suspicion) else None
        return treatment(4, lambda: DIGEST, suspicion, self.counted, self.limit)


DIED_IN_A_POLL = Mark(0, 9)
DIED_WITH_4_ALONE = Mark(4, 4, alone=True, digest=DIGEST)


@pytest.mark.parametrize("limit", [2, 3, 5])
def test_a_record_that_always_kills_is_condemned_after_limit_deaths_of_its_own(
    limit: int,
) -> None:
    """The first process dies in its poll; each next one dies taking the poison in alone, until
    one refuses it: ``limit + 1`` process deaths, ``limit`` of them the record's own."""
    successors = Successors(limit)
    process_deaths = 1
    step = successors.take_over(DIED_IN_A_POLL)
    while isinstance(step, Isolate):
        process_deaths += 1  # it dies taking the poison in
        assert process_deaths <= limit + 1, "the breaker never tripped"
        step = successors.take_over(DIED_WITH_4_ALONE)
    assert step == Condemn(limit)
    assert process_deaths == limit + 1


def test_a_suspicions_death_is_charged_to_nobody() -> None:
    """A process killed in a poll, then its successor killed while record 4 is taken in alone:
    one death is counted against record 4, and its next owner still takes it in."""
    successors = Successors(limit=2)
    assert successors.take_over(DIED_IN_A_POLL) == Isolate()
    assert successors.counted == {}
    assert successors.take_over(DIED_WITH_4_ALONE) == Isolate()
    assert successors.counted == {4: {DIGEST: 1}}
