"""A reply fits the broker's limit whatever the event: it lists the first errors and counts
the rest, and cuts a long message saying how much was left out."""

from __future__ import annotations

import orjson

from service.answers.joined import Joint
from service.answers.outcomes import Outcome, Stage, Subject, reply_body
from service.intake.contracts import ErrorCode, FieldError

SUBJECT = Subject("e1", "e1", "salesforce.contact.change")


def test_twenty_thousand_errors_are_the_first_hundred_and_a_count() -> None:
    errors = [FieldError(f"F{i}", ErrorCode.UNMAPPED, detail="x" * 100) for i in range(20_000)]
    body = orjson.loads(reply_body(SUBJECT, Outcome.failure(Stage.VALIDATION, "m", errors)))
    assert len(body["errors"]) == 100 and body["errors_omitted"] == 19_900


def test_a_long_message_is_cut_and_the_rest_counted() -> None:
    body = orjson.loads(reply_body(SUBJECT, Outcome.failure(Stage.CONNECTOR, "y" * 10_000)))
    assert body["message"] == "y" * 4_000 + "… (6000 more characters)"


def test_a_joint_message_names_the_first_ten_failures() -> None:
    joint = Joint("ticket", tuple(f"003Dn{i:013d}" for i in range(50)))
    whole = None
    for index in range(50):
        whole = joint.note(index, Outcome.failure(Stage.VALIDATION, "refused"))
    assert whole is not None and whole.message is not None
    assert whole.message.startswith("50 of 50 records not delivered: 003Dn0000000000000: refused")
    assert whole.message.endswith("; and 40 more")
