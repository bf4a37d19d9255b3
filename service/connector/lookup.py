"""Reconciling master data left in doubt by a crash: did it reach Sage before we died?

The ledger writes an intent when a master-data record is taken in and marks it delivered once
the Cloud Connector answers. An intent without that mark after a restart means the record's
array call may have been cut off mid-flight. Rather than send it again blindly, we ask the
Connector's list GET for the row by its key elements (the route's ``lookup``): if the row is
there with exactly our values, the record is answered SUCCESS without a second call.
If the row is absent or different, or the lookup fails, the record is sent again. That is safe
for an upsert by key, and it is what would have happened without this step.

A transactional record in doubt is looked up the same way (:func:`sighting`), but there the
three answers differ: a row with our values means the call stored it; no row means it did not
(once no call can still be running); a row with other values, or a look-up that failed, leaves
the question to a person.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from service.connector.results import CallResult, Delivered
from service.intake.routes import Route
from service.tenants import Tenant

Get = Callable[[Tenant, str, dict[str, str]], Awaitable[CallResult]]


class Sighting(StrEnum):
    """What the Connector's list GET showed of one record."""

    FOUND = "found"
    """A row with every value we would send."""
    ABSENT = "absent"
    """No row with the record's key."""
    DIFFERENT = "different"
    """A row with the key, but other values: not ours to judge."""
    FAILED = "failed"
    """The look-up itself was not answered (or not understood)."""


def query(lookup: Mapping[str, str], record: Mapping[str, Any]) -> dict[str, str]:
    """The list GET's parameters for ``record``: each key element's value under its parameter."""
    return {param: str(record.get(element, "")) for element, param in lookup.items()}


async def sighting(
    get: Get, tenant: Tenant, endpoint: str, lookup: Mapping[str, str], record: Mapping[str, Any]
) -> Sighting:
    """Look ``record`` up by its key elements (``lookup``) in ``endpoint``'s list GET."""
    result = await get(tenant, endpoint, query(lookup, record))
    if not isinstance(result, Delivered):
        return Sighting.FAILED
    rows = result.body.get("records")
    if not isinstance(rows, list):
        return Sighting.FAILED
    if any(isinstance(row, dict) and matches(row, record) for row in rows):
        return Sighting.FOUND
    return Sighting.DIFFERENT if rows else Sighting.ABSENT


async def already_in_sage(
    get: Get, tenant: Tenant, route: Route, record: Mapping[str, Any]
) -> bool:
    """``True`` only if the Connector shows the row with every value we would send."""
    if route.lookup is None:
        return False
    seen = await sighting(get, tenant, route.endpoint, route.lookup, record)
    return seen is Sighting.FOUND


def matches(row: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Every field of ``record`` has the same value in ``row`` (numbers compared as numbers,
    since Sage may answer ``12.50`` for ``12.5``)."""
    return all(_same(row.get(name), value) for name, value in record.items())


def _same(stored: Any, sent: Any) -> bool:
    if stored == sent:
        return True
    if stored is None or sent is None or isinstance(stored, bool) or isinstance(sent, bool):
        return False
    try:
        return Decimal(str(stored)) == Decimal(str(sent))
    except InvalidOperation:
        return str(stored) == str(sent)
