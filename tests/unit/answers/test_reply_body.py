"""A plain SUCCESS reply is put together from its kind's rendered end and its own ids: byte
for byte what encoding the reply's fields as one object gives, whatever the ids hold."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from service.answers.outcomes import Outcome, Subject, reply_body

SUBJECTS = [
    Subject("contact-1", "contact-1", "contact.upsert", ("CUST", "CO"), "/api/contacts"),
    Subject("contact-2", "corr-9", "contact.upsert", ("CUST", "CO"), "/api/contacts"),
    Subject('e "quoted" \\ é \u2028', "c\u00e9", "contact.upsert", ("C:1", 'C"2'), "/x"),
    Subject("e-3", "e-3", "contact.upsert"),
    Subject("e-4", "e-4", "contact.upsert", ("CUST", "CO")),
    Subject(None, None, None),
]


def _as_one_object(subject: Subject, attempts: int) -> bytes:
    body: dict[str, Any] = {
        "response": "SUCCESS",
        "event_id": subject.event_id,
        "correlation_id": subject.correlation_id,
        "type": subject.type,
    }
    if subject.tenant is not None:
        body["tenant"] = {"customer": subject.tenant[0], "company": subject.tenant[1]}
    if subject.endpoint is not None:
        body["endpoint"] = subject.endpoint
    body["attempts"] = attempts
    return orjson.dumps(body)


@pytest.mark.parametrize("subject", SUBJECTS)
@pytest.mark.parametrize("attempts", [0, 1, 3])
def test_a_success_reply_is_its_fields_as_one_object(subject: Subject, attempts: int) -> None:
    assert reply_body(subject, Outcome.success(attempts)) == _as_one_object(subject, attempts)


def test_replies_of_one_kind_keep_their_own_ids() -> None:
    first, second = SUBJECTS[0], SUBJECTS[1]
    bodies = [orjson.loads(reply_body(s, Outcome.success(1))) for s in (first, second, first)]
    assert [(b["event_id"], b["correlation_id"]) for b in bodies] == [
        ("contact-1", "contact-1"),
        ("contact-2", "corr-9"),
        ("contact-1", "contact-1"),
    ]


def test_a_success_with_a_message_says_it() -> None:
    body = orjson.loads(reply_body(SUBJECTS[0], Outcome(message="found in Sage", attempts=1)))
    assert body["response"] == "SUCCESS" and body["message"] == "found in Sage"
