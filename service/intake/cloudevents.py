"""CloudEvents 1.0 over Kafka -> an :class:`~service.intake.envelope.Event`. Pure.

The Kafka protocol binding has two modes, and a record says which it uses:

- **binary**: the attributes are ``ce_*`` headers (``ce_specversion``, ``ce_id``, ``ce_type``,
  ``ce_source``) and the value is the data itself (``content-type`` header, JSON here);
- **structured**: the ``content-type`` header is ``application/cloudevents+json`` and the
  value is the whole event as JSON.

A record with neither is not a CloudEvent and is read as our own envelope. The event maps onto
the envelope as SPEC says: ``id`` -> ``event_id``, ``type`` -> ``type``, ``data`` ->
``data``; the tenant is the default one and replies go to the default reply topic (CloudEvents
has no attribute for either). Decoding and the attribute rules are the CloudEvents SDK's; a
record it refuses, or whose data is not a JSON object, is a :class:`ParseFailure`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from cloudevents.core.bindings import kafka
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat

from service.intake.envelope import Event, ParseFailure
from service.intake.limits import MAX_ID_CHARS, MAX_TYPE_CHARS

Headers = Sequence[tuple[str, bytes]]
"""A Kafka record's headers, as aiokafka gives them."""

STRUCTURED = "application/cloudevents+json"
_FORMAT = JSONFormat()


def cloudevent_mode(headers: Headers) -> str | None:
    """``"binary"``, ``"structured"`` or ``None`` (not a CloudEvent)."""
    for name, value in headers:
        lowered = name.lower()
        if lowered.startswith(kafka.CE_PREFIX):
            return "binary"
        if (
            lowered == "content-type"
            and value.split(b";")[0].strip().lower() == STRUCTURED.encode()
        ):
            return "structured"
    return None


def read_cloudevent(
    value: bytes | None, headers: Headers, mode: str, max_bytes: int
) -> Event | ParseFailure:
    """The event a CloudEvents record carries, or why it is not a valid one."""
    if value is None:
        return ParseFailure("message has no value (tombstone)")
    if len(value) > max_bytes:
        return ParseFailure(f"message is {len(value)} bytes, more than the limit of {max_bytes}")
    header_map = _header_map(headers)
    missing = _missing_attributes(header_map, value, mode)
    if missing:
        return ParseFailure(f"CloudEvent ({mode} mode): required attributes missing: {missing}")
    message = kafka.KafkaMessage(headers=header_map, key=None, value=value)
    try:
        if mode == "binary":
            event = kafka.from_binary(message, _FORMAT)
        else:
            event = kafka.from_structured(message, _FORMAT)
        attributes, data = event.get_attributes(), event.get_data()
    except (BaseCloudEventException, ValueError, TypeError, KeyError, AttributeError) as exc:
        return ParseFailure(f"CloudEvent ({mode} mode) is not valid: {_first_line(exc)}")
    return _to_event(attributes, data, mode)


def _to_event(attributes: dict[str, Any], data: Any, mode: str) -> Event | ParseFailure:
    event_id, event_type = attributes.get("id"), attributes.get("type")
    if attributes.get("specversion") != "1.0":
        return ParseFailure(
            f"CloudEvent: specversion must be 1.0, got {attributes.get('specversion')!r}"
        )
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_ID_CHARS:
        return ParseFailure(f"CloudEvent id: required, a string of 1-{MAX_ID_CHARS} characters")
    good_id = event_id if event_id.isprintable() else None
    if good_id is None:
        return ParseFailure("CloudEvent id: control characters are not allowed")
    if not isinstance(event_type, str) or not 0 < len(event_type) <= MAX_TYPE_CHARS:
        return ParseFailure(
            f"CloudEvent type: required, at most {MAX_TYPE_CHARS} characters", good_id, good_id
        )
    if not event_type.isprintable():
        return ParseFailure("CloudEvent type: control characters are not allowed", good_id, good_id)
    if not isinstance(data, dict):
        kind = {type(None): "none", str: "text that is not a JSON object", bytes: "bytes"}.get(
            type(data), type(data).__name__
        )
        return ParseFailure(
            f"CloudEvent data ({mode} mode): a JSON object is needed, got {kind}",
            good_id,
            good_id,
            event_type,
        )
    return Event(event_id=good_id, type=event_type, data=data, correlation_id=good_id)


REQUIRED = ("specversion", "id", "source", "type")


def _missing_attributes(headers: dict[str, bytes], value: bytes, mode: str) -> str:
    """The required attributes a record lacks (the SDK would make up an ``id`` of its own,
    and an event_id nobody sent could never be matched to its reply)."""
    if mode == "binary":
        present = {name[len(kafka.CE_PREFIX) :] for name in headers}
    else:
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            return ""  # the SDK reports the JSON error
        present = set(doc) if isinstance(doc, dict) else set()
    return ", ".join(name for name in REQUIRED if name not in present)


def _header_map(headers: Headers) -> dict[str, bytes]:
    return {name.lower(): value for name, value in headers}


def _first_line(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
