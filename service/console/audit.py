"""What an operator did in the console, as a record of the audit topic (``SAGEBRIDGE_AUDIT_TOPIC``).

One JSON object per action, keyed by the event (or tenant) it touched, so an event's history can
show who replayed or resolved it. Written before the page says it is done: an action whose
record Kafka did not acknowledge is reported as not recorded. Pure: publishing and reading
live in :mod:`service.console.audit_trail`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import orjson

MAX_REASON = 500
"""Longest reason kept, in characters."""


@dataclass(frozen=True, slots=True)
class Action:
    """Who did what, to which event or tenant, why, when, and what came of it."""

    who: str
    what: str
    """``resolve_delivered``, ``resolve_not_delivered``, ``replay``, ``pause``, ``resume``."""
    event_ids: tuple[str, ...] = ()
    tenant: str | None = None
    reason: str = ""
    result: str = ""
    at: str = ""

    def key(self) -> bytes:
        return (
            self.event_ids[0] if len(self.event_ids) == 1 else self.tenant or self.what
        ).encode()

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self))


def action(
    who: str,
    what: str,
    *,
    event_ids: tuple[str, ...] = (),
    tenant: str | None = None,
    reason: str = "",
    result: str = "",
) -> Action:
    """An :class:`Action` stamped now (UTC), its reason trimmed to :data:`MAX_REASON`."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return Action(who, what, event_ids, tenant, reason.strip()[:MAX_REASON], result, now)


def decode(value: bytes | None) -> Action | None:
    """An audit record's value as an :class:`Action`; ``None`` if it is not one."""
    try:
        data = orjson.loads(value or b"")
        return Action(
            who=str(data["who"]),
            what=str(data["what"]),
            event_ids=tuple(str(e) for e in data.get("event_ids", ())),
            tenant=data.get("tenant"),
            reason=str(data.get("reason", "")),
            result=str(data.get("result", "")),
            at=str(data.get("at", "")),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None
