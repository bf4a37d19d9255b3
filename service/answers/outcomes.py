"""Outcomes: what happened to one event, and the reply and dead-letter shapes that report it.

Pure data and formatting; publishing lives in :mod:`service.answers.publisher`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from service.field_errors import FieldError


class Stage(StrEnum):
    """Where an event failed; replies and the ``x-error-stage`` header carry it."""

    PARSE = "parse"
    VALIDATION = "validation"
    ROUTE = "route"
    CONNECTOR = "connector"
    UNKNOWN_OUTCOME = "unknown_outcome"


@dataclass(frozen=True, slots=True)
class Outcome:
    """SUCCESS (``stage is None``) or ERROR at ``stage`` with a message and field errors."""

    stage: Stage | None = None
    message: str | None = None
    errors: tuple[FieldError, ...] = ()
    attempts: int = 0
    ok: bool = field(init=False, repr=False, compare=False)
    """``stage is None``, kept as a field: every answered event reads it several times, and an
    attribute costs a fraction of a property call."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ok", self.stage is None)

    @classmethod
    def success(cls, attempts: int) -> Outcome:
        """Shared instances (outcomes are immutable): a batch of 100 needs one, not 100."""
        found = _SUCCESSES.get(attempts)
        if found is None:
            found = _SUCCESSES[attempts] = cls(attempts=attempts)
        return found

    @classmethod
    def failure(
        cls, stage: Stage, message: str, errors: Sequence[FieldError] = (), attempts: int = 0
    ) -> Outcome:
        return cls(stage=stage, message=message, errors=tuple(errors), attempts=attempts)

    @classmethod
    def reused_event_id(cls, event_id: str) -> Outcome:
        """The ledger knows ``event_id`` with other data: refused, nothing sent."""
        return cls.failure(
            Stage.VALIDATION,
            f"event_id {event_id!r} was already used with different data; not sent",
        )

    @classmethod
    def internal_error(
        cls, exc: BaseException, *, stage: Stage = Stage.CONNECTOR, attempts: int = 0
    ) -> Outcome:
        """A bug stopped a lane mid-delivery: the record is answered, not stranded. ``stage``
        is :attr:`Stage.UNKNOWN_OUTCOME` where the call may have been made and must not be
        resent."""
        return cls.failure(stage, f"internal error: {exc!r}", attempts=attempts)


_SUCCESSES: dict[int, Outcome] = {}


@dataclass(slots=True)
class Subject:
    """What a reply says the event was: the envelope parts known when the outcome was decided."""

    event_id: str | None
    correlation_id: str | None
    type: str | None
    tenant: tuple[str, str] | None = None
    endpoint: str | None = None


MAX_REPLY_ERRORS = 100
"""Field errors a reply lists; past it, ``errors_omitted`` counts the rest."""
MAX_MESSAGE_CHARS = 4_000
"""Characters of ``message`` a reply carries; past it, the rest is counted."""


def reply_body(subject: Subject, outcome: Outcome) -> bytes:
    """The reply value, shaped as SPEC shows. Bounded whatever the event: the first
    :data:`MAX_REPLY_ERRORS` errors and :data:`MAX_MESSAGE_CHARS` of the message, the rest
    counted, so a reply always fits the broker's limit and carries its verdict."""
    ok = outcome.ok
    if ok and not outcome.message:
        return _plain_success(subject, outcome.attempts)
    body: dict[str, Any] = {"response": "SUCCESS" if ok else "ERROR"}
    if not ok or outcome.message:  # a SUCCESS may say how it is known ("found in Sage")
        body["message"] = bounded_message(outcome.message or "")
    body["event_id"] = subject.event_id
    body["correlation_id"] = subject.correlation_id
    body["type"] = subject.type
    if subject.tenant is not None:
        body["tenant"] = _tenant_object(subject.tenant)
    if subject.endpoint is not None:
        body["endpoint"] = subject.endpoint
    if not ok:
        body["stage"] = str(outcome.stage)
        body["errors"] = [error.as_dict() for error in outcome.errors[:MAX_REPLY_ERRORS]]
        if len(outcome.errors) > MAX_REPLY_ERRORS:
            body["errors_omitted"] = len(outcome.errors) - MAX_REPLY_ERRORS
    body["attempts"] = outcome.attempts
    return orjson.dumps(body)


_SUCCESS_HEAD = b'{"response":"SUCCESS",'
_SUCCESS_TAILS: dict[tuple[str | None, tuple[str, str] | None, str | None, int], bytes] = {}
"""The end of a plain SUCCESS reply (``type`` to ``attempts``) per kind of event: a batch's
replies differ only in their ids, so each kind's end is rendered once."""
MAX_SUCCESS_TAILS = 10_000
"""A guard: the kinds are the routes' types and endpoints, the configured tenants and the
attempts a call may take, so far fewer than this in practice."""


def _plain_success(subject: Subject, attempts: int) -> bytes:
    """A SUCCESS reply without a message, byte for byte what :func:`reply_body`'s dict would
    render: the ids encoded on their own, the rest from :data:`_SUCCESS_TAILS` (a fifth of the
    dict's cost per reply)."""
    kind = (subject.type, subject.tenant, subject.endpoint, attempts)
    tail = _SUCCESS_TAILS.get(kind)
    if tail is None:
        rest: dict[str, Any] = {"type": subject.type}
        if subject.tenant is not None:
            rest["tenant"] = _tenant_object(subject.tenant)
        if subject.endpoint is not None:
            rest["endpoint"] = subject.endpoint
        rest["attempts"] = attempts
        if len(_SUCCESS_TAILS) >= MAX_SUCCESS_TAILS:
            _SUCCESS_TAILS.clear()
        tail = _SUCCESS_TAILS[kind] = b"," + orjson.dumps(rest)[1:]
    return b"".join((_SUCCESS_HEAD, ids_fields(subject), tail))


def ids_fields(subject: Subject) -> bytes:
    """``"event_id":…,"correlation_id":…`` rendered as ``orjson.dumps`` renders them in a
    reply or an outcome line (the id encoded once when the correlation id is the same)."""
    event_id = orjson.dumps(subject.event_id)
    correlation_id = (
        event_id
        if subject.correlation_id == subject.event_id
        else orjson.dumps(subject.correlation_id)
    )
    return b"".join((b'"event_id":', event_id, b',"correlation_id":', correlation_id))


@functools.lru_cache(maxsize=10_000)  # the configured tenants; the bound is a guard
def _tenant_object(tenant: tuple[str, str]) -> dict[str, str]:
    """A reply's ``tenant`` object, made once per tenant: only read (by ``orjson.dumps``),
    never changed, so every reply of a tenant can share it."""
    return {"customer": tenant[0], "company": tenant[1]}


def bounded_message(text: str) -> str:
    """``text`` cut to :data:`MAX_MESSAGE_CHARS`, saying how much was left out."""
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    return f"{text[:MAX_MESSAGE_CHARS]}… ({len(text) - MAX_MESSAGE_CHARS} more characters)"


@dataclass(slots=True)
class Origin:
    """Where a consumed message came from; the dead letter records it for replay."""

    topic: str
    partition: int
    offset: int


MAX_HEADER_CHARS = 1000


def dead_letter_headers(
    subject: Subject, outcome: Outcome, origin: Origin
) -> list[tuple[str, bytes]]:
    """The SPEC's ``x-`` headers. Text is made single-line and bounded: header values end up in
    terminals and log pipelines."""
    return [
        ("x-error-stage", str(outcome.stage).encode()),
        ("x-error-message", _header_text(outcome.message or "")),
        ("x-event-id", _header_text(subject.event_id or "")),
        ("x-original-topic", origin.topic.encode()),
        ("x-original-partition", str(origin.partition).encode()),
        ("x-original-offset", str(origin.offset).encode()),
        ("x-attempts", str(outcome.attempts).encode()),
    ]


def _header_text(text: str) -> bytes:
    flat = "".join(c if c.isprintable() else " " for c in text)
    return flat[:MAX_HEADER_CHARS].encode("utf-8", "replace")
