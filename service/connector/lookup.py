"""Reconciling master data left in doubt by a crash: did it reach Sage before we died?

The ledger writes an intent when a master-data record is taken in and marks it delivered once
the Cloud Connector answers. An intent without that mark after a restart means the record's
array call may have been cut off mid-flight. Rather than send it again blindly, we ask the
Connector's list GET for the row by its key elements (the route's ``lookup``): if the row is
there with exactly our values, the record is answered SUCCESS without a second call.
If the row is absent or different, or the lookup fails, the record is sent again. That is safe
for an upsert by key, and it is what would have happened without this step.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from service.connector.results import CallResult, Delivered
from service.intake.routes import Route
from service.tenants import Tenant

Get = Callable[[Tenant, str, dict[str, str]], Awaitable[CallResult]]


async def already_in_sage(
    get: Get, tenant: Tenant, route: Route, record: Mapping[str, Any]
) -> bool:
    """``True`` only if the Connector shows the row with every value we would send."""
    if route.lookup is None:
        return False
    params = {param: str(record.get(element, "")) for element, param in route.lookup.items()}
    result = await get(tenant, route.endpoint, params)
    if not isinstance(result, Delivered):
        return False
    rows = result.body.get("records")
    if not isinstance(rows, list):
        return False
    return any(isinstance(row, dict) and matches(row, record) for row in rows)


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
