"""One answer for an event that became several records."""

from __future__ import annotations

from service.answers.joined import Joint
from service.answers.outcomes import Outcome, Stage


def test_the_event_is_answered_once_when_every_part_is() -> None:
    joint = Joint("ticket", ("003A", "003B"))
    assert joint.note(1, Outcome.success(2)) is None
    assert joint.note(1, Outcome.success(2)) is None  # a repeat changes nothing
    whole = joint.note(0, Outcome.success(1))
    assert whole is not None and whole.ok and whole.attempts == 2
    assert joint.note(0, Outcome.success(1)) is None


def test_a_failed_part_makes_the_event_an_error_naming_the_record() -> None:
    joint = Joint("ticket", ("003A", "003B", "003C"))
    joint.note(0, Outcome.success(1))
    joint.note(1, Outcome.failure(Stage.CONNECTOR, "record 0: CustomerNo unknown", attempts=1))
    whole = joint.note(2, Outcome.failure(Stage.UNKNOWN_OUTCOME, "timed out", attempts=1))
    assert whole is not None and whole.stage is Stage.UNKNOWN_OUTCOME
    assert whole.message == (
        "2 of 3 records not delivered: 003B: record 0: CustomerNo unknown; 003C: timed out"
    )


def test_a_dropped_part_gives_up_the_event_once_and_ignores_late_answers() -> None:
    joint = Joint("ticket", ("003A", "003B"))
    joint.note(0, Outcome.success(1))
    assert joint.give_up() is True
    assert joint.give_up() is False
    assert joint.note(1, Outcome.success(1)) is None
