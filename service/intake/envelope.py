"""Envelope: the bytes of one Kafka value -> an :class:`Event`, or a :class:`ParseFailure`.

Nothing here raises on bad input: every way a producer can get the envelope wrong is a value
that the caller turns into an ERROR reply (stage ``parse``) and a dead letter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from service.intake.limits import MAX_ID_CHARS, MAX_TYPE_CHARS
from service.intake.wire import SchemaBook, Undecodable, decode, json_kind
from service.topic_names import is_valid_topic

NO_SCHEMAS: SchemaBook = MappingProxyType({})
"""No Schema Registry: a wire-format value is refused, naming the setting that is missing."""


@dataclass(slots=True)
class Event:
    """A well-formed CRM event. ``customer``/``company`` are ``None`` for the default tenant."""

    event_id: str
    type: str
    data: dict[str, Any]
    correlation_id: str
    reply_to: str | None = None
    customer: str | None = None
    company: str | None = None


@dataclass(frozen=True, slots=True)
class ParseFailure:
    """Why the value is not an event, plus what could still be read from it for the reply.
    (Not its ``reply_to``: without a well-formed envelope there is no tenant to judge that topic
    for, so a parse failure is answered on the default reply topic.)"""

    reason: str
    event_id: str | None = None
    correlation_id: str | None = None
    type: str | None = None


def parse_event(
    value: bytes | None, max_bytes: int, schemas: SchemaBook = NO_SCHEMAS
) -> Event | ParseFailure:
    """Decode and shape-check one event value (the data fields are checked later, by contract).
    The value may be our JSON envelope, or that envelope in Connect JSON or through the Schema
    Registry (:mod:`service.intake.wire`)."""
    doc = _document(value, max_bytes, schemas)
    if isinstance(doc, ParseFailure):
        return doc
    if not isinstance(doc, dict):
        return ParseFailure(f"expected a JSON object, got {json_kind(doc)}")
    return _shape(doc)


def parse_payload(
    value: bytes | None,
    max_bytes: int,
    event_type: str,
    event_id_of: Callable[[Any], str | None],
    schemas: SchemaBook = NO_SCHEMAS,
) -> Event | ParseFailure:
    """A CRM's raw payload, from a topic bound to the route ``event_type``: no envelope, so the
    route's mapping says which payload fields make the ``event_id`` (``event_id_of``)."""
    doc = _document(value, max_bytes, schemas)
    if isinstance(doc, ParseFailure):
        return ParseFailure(doc.reason, type=event_type)
    if not isinstance(doc, dict):
        return ParseFailure(f"expected a JSON object, got {json_kind(doc)}", type=event_type)
    event_id = event_id_of(doc)
    if event_id is None:
        return ParseFailure(
            f"event_id: the payload lacks the fields the {event_type} mapping makes it from",
            type=event_type,
        )
    return Event(event_id, event_type, doc, event_id)


def _document(value: bytes | None, max_bytes: int, schemas: SchemaBook) -> Any | ParseFailure:
    if value is None:
        return ParseFailure("message has no value (tombstone)")
    if len(value) > max_bytes:
        return ParseFailure(f"message is {len(value)} bytes, more than the limit of {max_bytes}")
    doc = decode(value, schemas)
    if isinstance(doc, Undecodable):
        return ParseFailure(doc.reason)
    return doc


def _shape(doc: dict[str, Any]) -> Event | ParseFailure:
    event_id, event_type, data = doc.get("event_id"), doc.get("type"), doc.get("data")
    reply_to = doc.get("reply_to")
    correlation_id = doc.get("correlation_id")
    if (  # the usual event, accepted without working out what a refusal could echo
        type(event_id) is str
        and _id_ok(event_id)
        and type(event_type) is str
        and _type_ok(event_type)
        and type(data) is dict
        and reply_to is None
        and "tenant" not in doc
        and (correlation_id is None or (type(correlation_id) is str and _id_ok(correlation_id)))
    ):
        return Event(event_id, event_type, data, correlation_id or event_id)
    # What can be salvaged for the reply of a bad event: only well-formed pieces are echoed.
    good_id = event_id if isinstance(event_id, str) and _id_ok(event_id) else None
    good_reply = reply_to if isinstance(reply_to, str) and is_valid_topic(reply_to) else None
    good_corr = (
        correlation_id if isinstance(correlation_id, str) and _id_ok(correlation_id) else None
    )
    good_type = event_type if isinstance(event_type, str) and _type_ok(event_type) else None

    def fail(reason: str) -> ParseFailure:
        return ParseFailure(reason, good_id, good_corr or good_id, good_type)

    if not isinstance(event_id, str) or not event_id:
        return fail(f"event_id: required, a string of 1-{MAX_ID_CHARS} characters")
    if len(event_id) > MAX_ID_CHARS:
        return fail(f"event_id: at most {MAX_ID_CHARS} characters, got {len(event_id)}")
    if not _id_ok(event_id):
        return fail("event_id: control characters are not allowed")
    if not isinstance(event_type, str) or not event_type:
        return fail("type: required, a non-empty string")
    if len(event_type) > MAX_TYPE_CHARS:
        return fail(f"type: at most {MAX_TYPE_CHARS} characters, got {len(event_type)}")
    if good_type is None:
        return fail("type: control characters are not allowed")
    if not isinstance(data, dict):
        return fail(f"data: required, a JSON object, got {json_kind(data)}")
    if reply_to is not None and good_reply is None:
        return fail("reply_to: not a valid Kafka topic name")
    if correlation_id is not None and good_corr is None:
        return fail(
            f"correlation_id: a string of 1-{MAX_ID_CHARS} characters without control characters"
        )
    tenant = doc.get("tenant")
    customer = company = None
    if tenant is not None:
        if not isinstance(tenant, dict):
            return fail("tenant: expected an object with customer and company")
        customer, company = tenant.get("customer"), tenant.get("company")
        if not (isinstance(customer, str) and _id_ok(customer)) or not (
            isinstance(company, str) and _id_ok(company)
        ):
            return fail(
                "tenant: customer and company must be non-empty strings without control characters"
            )
    return Event(
        event_id=event_id,
        type=event_type,
        data=data,
        correlation_id=good_corr or event_id,
        reply_to=good_reply,
        customer=customer,
        company=company,
    )


def _id_ok(text: str) -> bool:
    return 0 < len(text) <= MAX_ID_CHARS and text.isprintable()


def _type_ok(text: str) -> bool:
    return 0 < len(text) <= MAX_TYPE_CHARS and text.isprintable()
