"""Dead letters as operators see them, and the filters ``dlt list`` and ``dlt replay`` share.

A dead letter is the original key and value with the ``x-`` headers of
:func:`service.answers.outcomes.dead_letter_headers`. Its tenant and type are not headers: they
come from the original value, read with the service's own envelope parser, and are ``unknown``
when it does not parse (that is often why it is a dead letter). An event that names no tenant
belongs to the default tenant, as it did when the service took it in.

Pure: reading the topic lives in :mod:`service.tools.dead_letter_reader`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from service.intake.envelope import Event, parse_event
from service.tenants import TenantKey

UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of the dead-letter topic: where it sits, what failed, and its original."""

    topic: str
    partition: int
    offset: int
    time: datetime
    key: bytes | None
    value: bytes | None
    event_id: str | None
    stage: str
    message: str
    tenant: str
    """``CUSTOMER/COMPANY``, or ``unknown``."""
    type: str
    original_topic: str
    original_partition: int | None
    original_offset: int | None

    def summary(self) -> dict[str, object]:
        """The fields ``dlt list --json`` shows of a letter (SPEC's shape)."""
        return {
            "event_id": self.event_id,
            "stage": self.stage,
            "message": self.message,
            "tenant": self.tenant,
            "type": self.type,
            "topic": self.original_topic,
            "partition": self.original_partition,
            "offset": self.original_offset,
            "time": iso(self.time),
        }


def describe(
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes | None,
    headers: Mapping[str, bytes],
    *,
    default_tenant: TenantKey | None,
    max_event_bytes: int,
) -> DeadLetter:
    """A dead-letter record as a :class:`DeadLetter`; missing headers read as empty."""

    def text(name: str) -> str:
        return headers.get(name, b"").decode("utf-8", "replace")

    tenant, event_type = UNKNOWN, UNKNOWN
    parsed = parse_event(value, max_event_bytes)
    if isinstance(parsed, Event):
        event_type = parsed.type
        named = _tenant_of(parsed, default_tenant)
        tenant = str(named) if named is not None else UNKNOWN
    return DeadLetter(
        topic=topic,
        partition=partition,
        offset=offset,
        time=datetime.fromtimestamp(timestamp_ms / 1000, UTC),
        key=key,
        value=value,
        event_id=text("x-event-id") or None,
        stage=text("x-error-stage") or UNKNOWN,
        message=text("x-error-message"),
        tenant=tenant,
        type=event_type,
        original_topic=text("x-original-topic"),
        original_partition=_number(text("x-original-partition")),
        original_offset=_number(text("x-original-offset")),
    )


def _tenant_of(event: Event, default: TenantKey | None) -> TenantKey | None:
    if event.customer is None and event.company is None:
        return default
    if event.customer is None or event.company is None:
        return None
    return TenantKey(event.customer, event.company)


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


@dataclass(frozen=True, slots=True)
class LetterFilter:
    """Which letters a command is about; an empty field does not filter. ``since`` is
    inclusive, ``until`` exclusive, both compared with the dead letter's own time."""

    stages: Collection[str] = ()
    tenant: TenantKey | None = None
    type: str | None = None
    event_ids: Collection[str] = ()
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, letter: DeadLetter) -> bool:
        return (
            (not self.stages or letter.stage in self.stages)
            and (self.tenant is None or letter.tenant == str(self.tenant))
            and (self.type is None or letter.type == self.type)
            and (not self.event_ids or letter.event_id in self.event_ids)
            and (self.since is None or letter.time >= self.since)
            and (self.until is None or letter.time < self.until)
        )


def parse_time(text: str) -> datetime:
    """ISO 8601 (``2026-12-01T08:00:00Z``); a time without an offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"not an ISO 8601 time: {text!r} (for example 2026-12-01T08:00:00Z)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    """UTC, milliseconds, ``Z``: how the tools print a time."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
