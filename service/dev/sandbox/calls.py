"""One business call as the sandbox sees it: what it carried (its body's records, its tenant and
token), whether those records pass, and the call-log entry it becomes once answered."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from service.intake.routes import Route as SageRoute
from service.tenants import TenantKey


@dataclass(slots=True)
class Call:
    """What is known about one business call so far; becomes its call-log entry."""

    number: int
    endpoint: str
    customer: str
    company: str
    token: str | None = None
    """The token's label, never the token."""
    records: int = 0
    array: bool = False
    lookup: bool = False
    """A read (``GET``): counted under ``lookups``, not as a call that could write."""
    received_s: float = field(default_factory=time.monotonic)
    """When the request arrived, on this machine's monotonic clock: tests measure the gaps
    between calls (a ``Retry-After`` obeyed) from the server's side, without sleeping."""
    reply_headers: dict[str, str] = field(default_factory=dict)

    @property
    def tenant(self) -> TenantKey:
        return TenantKey(self.customer, self.company)

    def log_entry(self, status: int, payload: dict[str, Any] | bytes) -> dict[str, Any]:
        if isinstance(payload, bytes):  # a proxy's page: no envelope
            payload = {"response": "ERROR", "message": payload.decode(errors="replace")}
        return {
            "call": self.number,
            "endpoint": self.endpoint,
            "customer": self.customer,
            "company": self.company,
            "records": self.records,
            "array": self.array,
            "token": self.token,
            "outcome": payload.get("response", "ERROR"),
            "status": status,
            "message": payload.get("message"),
            "received_s": self.received_s,
        }


def parse_body(raw: bytes) -> tuple[list[dict[str, Any]], bool] | str:
    """(records, was an array), or the reason the body is not one object or array of objects."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "sandbox: body is not valid JSON"
    if isinstance(body, dict):
        return [body], False
    if not isinstance(body, list):
        return "sandbox: body must be a JSON object or an array of objects"
    if not body:
        return "sandbox: empty array: nothing to process"
    for index, item in enumerate(body):
        if not isinstance(item, dict):
            return f"sandbox: array item {index} is not a JSON object"
    return body, True


def first_bad_record(
    route: SageRoute, records: list[dict[str, Any]], reject_marker: str | None
) -> tuple[int, str] | None:
    """The first refused record's index and ``record {index}: {problem}``, or ``None``: a
    breach of the table's contract, or a value equal to the ``reject_marker`` fault."""
    contract = route.contract
    for index, record in enumerate(records):
        if contract is not None:
            errors = contract.check(record)
            if errors:
                return index, f"record {index}: {errors[0].describe()}"
        if reject_marker is not None:
            for name, value in record.items():
                if isinstance(value, str) and value == reject_marker:
                    return index, f"record {index}: {name}: rejected by Sage"
    return None
