"""The crash-loop breaker's decisions: what a mark left behind says, and how each record of a
replayed poll is taken in."""

from __future__ import annotations

import pytest

from service.crashloop import (
    Condemn,
    Death,
    Isolate,
    Mark,
    Suspicion,
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


def test_an_alone_mark_is_a_death_charged_to_its_record_with_what_it_carried() -> None:
    assert judge(Mark(15, 15, alone=True, carried=1, digest=DIGEST), replay_from=10) == Death(
        15, DIGEST, 2
    )


def test_a_poll_mark_is_a_suspicion_from_where_the_replay_starts() -> None:
    assert judge(Mark(10, 19), replay_from=12) == Suspicion(12, 19, 1)
    assert judge(Mark(10, 19), replay_from=5) == Suspicion(10, 19, 1)


def test_records_with_nothing_against_them_go_with_their_poll_unhashed() -> None:
    assert treatment(7, never, None, {}, limit=3) is None
    assert treatment(7, never, Suspicion(10, 19, 1), {12: {DIGEST: 2}}, limit=3) is None


def test_a_suspected_record_is_taken_alone_carrying_the_suspicions_death() -> None:
    assert treatment(12, never, Suspicion(10, 19, 1), {}, limit=3) == Isolate(1)


def test_a_record_with_deaths_is_taken_alone_until_the_limit_then_condemned() -> None:
    assert treatment(12, lambda: DIGEST, None, {12: {DIGEST: 2}}, limit=3) == Isolate(0)
    assert treatment(12, lambda: DIGEST, None, {12: {DIGEST: 3}}, limit=3) == Condemn(3)


def test_deaths_of_another_record_at_the_same_offset_do_not_count() -> None:
    """A topic deleted and created again reuses offsets; the digest tells the records apart."""
    assert treatment(12, lambda: DIGEST + 1, None, {12: {DIGEST: 5}}, limit=3) is None


def test_a_poll_needs_care_only_where_it_meets_a_suspicion_or_a_counted_death() -> None:
    assert not concerns(0, 9, None, {})
    assert not concerns(0, 9, Suspicion(10, 19, 1), {20: {DIGEST: 1}})
    assert concerns(5, 14, Suspicion(10, 19, 1), {})
    assert concerns(15, 25, None, {20: {DIGEST: 1}})


@pytest.mark.parametrize("limit", [2, 3, 5])
def test_a_record_that_always_kills_is_condemned_at_exactly_the_limit(limit: int) -> None:
    """Each process dies taking the poison in; the next one judges the mark it left."""
    left = Mark(0, 9)  # the first process died taking in its poll
    counted: dict[int, dict[int, int]] = {}
    suspicion: Suspicion | None = None
    deaths = 1
    while True:
        verdict = judge(left, replay_from=0)
        if isinstance(verdict, Death):
            at = counted.setdefault(verdict.offset, {})
            at[verdict.digest] = at.get(verdict.digest, 0) + verdict.count
            suspicion = None
        elif isinstance(verdict, Suspicion):
            suspicion = verdict
        step = treatment(4, lambda: DIGEST, suspicion, counted, limit)
        if isinstance(step, Condemn):
            break
        assert isinstance(step, Isolate)
        left = Mark(4, 4, alone=True, carried=step.carried, digest=DIGEST)  # and it dies again
        deaths += 1
        assert deaths <= limit
    assert deaths == limit == step.deaths
