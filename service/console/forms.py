"""What a page's query or form asks for, checked: a filter too long, a time that is not one or a
tenant that is not ``CUSTOMER/COMPANY`` is a :class:`BadInput` with the sentence to show.

Pure: the same words for a GET filter and for the POST that replays what it shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from service.tenants import TenantKey, parse_tenant_key
from service.tools.dead_letters import LetterFilter, parse_time

MAX_FILTER = 200
"""Longest value a filter field takes, in characters (an event_id, a type, a time)."""
FIELDS = ("stage", "tenant", "type", "since", "until")


class BadInput(ValueError):
    """A request the console will not act on; ``str()`` is the sentence the page shows."""


@dataclass(frozen=True, slots=True)
class LetterQuery:
    """The filter fields as typed (to fill the form again) and as a :class:`LetterFilter`."""

    typed: dict[str, str]
    chosen: LetterFilter


def text(values: Mapping[str, object], name: str, *, required: bool = False) -> str:
    """One field, trimmed; :class:`BadInput` when too long, or missing and ``required``."""
    value = values.get(name)
    found = value.strip() if isinstance(value, str) else ""
    if len(found) > MAX_FILTER:
        raise BadInput(f"{name} is {len(found)} characters long; at most {MAX_FILTER} are taken")
    if required and not found:
        raise BadInput(f"{name} is missing")
    return found


def tenant(values: Mapping[str, object], name: str = "tenant") -> TenantKey:
    try:
        return parse_tenant_key(text(values, name, required=True))
    except ValueError as exc:
        raise BadInput(f"{name}: {exc}") from None


def letter_query(values: Mapping[str, object]) -> LetterQuery:
    """The dead-letter filters of a query string or form."""
    typed = {name: text(values, name) for name in FIELDS}
    try:
        since = parse_time(typed["since"]) if typed["since"] else None
        until = parse_time(typed["until"]) if typed["until"] else None
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    event_id = text(values, "event_id")
    chosen = LetterFilter(
        stages=frozenset([typed["stage"]]) if typed["stage"] else frozenset(),
        tenant=tenant(typed) if typed["tenant"] else None,
        type=typed["type"] or None,
        event_ids=frozenset([event_id]) if event_id else frozenset(),
        since=since,
        until=until,
    )
    return LetterQuery(typed, chosen)
