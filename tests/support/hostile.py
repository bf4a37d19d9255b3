"""Hostile event values: every way a producer can get an event wrong, with the stage its
refusal names. Shared by the per-kind integration test and the soak."""

from __future__ import annotations

from typing import Any

import orjson

from service.dev.events import contact, event
from tests.conftest import COMPANY, CUSTOMER

MIB = 1024 * 1024


def envelope(**overrides: Any) -> bytes:
    doc: dict[str, Any] = event("hostile", contact(1))
    doc.update(overrides)
    return orjson.dumps(doc)


def nested(depth: int) -> bytes:
    return (
        b'{"event_id": "deep", "type": "contact.upsert", "data": {"x": '
        + b"[" * depth
        + b"]" * depth
        + b"}}"
    )


def deep_invoice(levels: int) -> bytes:
    """A transactional record ``levels`` objects deep (orjson would not encode one this deep,
    so it is built as text)."""
    return (
        b'{"event_id": "deep-invoice", "type": "ar_invoice.create", "data": '
        + b'{"x": ' * levels
        + b"1"
        + b"}" * levels
        + b"}"
    )


def customer_with_credit_limit(value: str) -> bytes:
    data = {"ARDivisionNo": "01", "CustomerNo": "C1", "CreditLimit": value}
    return envelope(type="customer.upsert", data=data)


def big(size: int) -> bytes:
    return envelope(data=contact(1, ContactNotes="x" * size))


HOSTILE: dict[str, tuple[bytes, str]] = {
    "non-utf8": (b'{"event_id": "\xff\xfe", "type": 1}', "parse"),
    "invalid-json": (b'{"event_id": "x", ', "parse"),
    "top-level-array": (b'[{"event_id": "x"}]', "parse"),
    "top-level-number": (b"12345", "parse"),
    "top-level-string": (b'"just a string"', "parse"),
    "top-level-null": (b"null", "parse"),
    "deeply-nested": (nested(100_000), "parse"),
    "one-mib": (big(MIB), "parse"),
    "ten-mib": (big(10 * MIB), "parse"),
    "event-id-missing": (orjson.dumps({"type": "contact.upsert", "data": contact(1)}), "parse"),
    "event-id-empty": (envelope(event_id=""), "parse"),
    "event-id-129-chars": (envelope(event_id="e" * 129), "parse"),
    "unknown-type": (envelope(type="contact.explode"), "route"),
    "type-129-chars": (envelope(type="t" * 129), "parse"),
    "type-200k-chars": (envelope(type="t" * 200_000), "parse"),
    "newline-in-type": (envelope(type="contact.upsert\nX-Injected: 1"), "parse"),
    "invoice-65-levels-deep": (deep_invoice(65), "validation"),
    "invoice-400-levels-deep": (deep_invoice(400), "validation"),
    "invoice-with-200k-values": (
        envelope(type="ar_invoice.create", data={"Lines": [0] * 200_000}),
        "validation",
    ),
    "unknown-tenant": (envelope(tenant={"customer": "666", "company": "EVIL"}), "route"),
    "crlf-in-tenant": (
        envelope(tenant={"customer": CUSTOMER, "company": f"{COMPANY}\r\nX-Injected: 1"}),
        "parse",
    ),
    "nul-in-tenant": (
        envelope(tenant={"customer": f"{CUSTOMER}\x00", "company": COMPANY}),
        "parse",
    ),
    "nul-in-field": (envelope(data=contact(1, ContactName="Jane\x00Smith")), "validation"),
    "bell-in-field": (envelope(data=contact(1, ContactNotes="ding\x07")), "validation"),
    "control-in-invoice": (
        envelope(type="ar_invoice.create", data={"InvoiceNo": "I-1", "Memo": "a\x1bb"}),
        "validation",
    ),
    "exponent-number": (
        customer_with_credit_limit("1e5"),
        "validation",
    ),
    "nan-string": (
        customer_with_credit_limit("NaN"),
        "validation",
    ),
    "infinity-string": (
        customer_with_credit_limit("Infinity"),
        "validation",
    ),
    "nan-literal": (
        b'{"event_id": "n", "type": "customer.upsert", "data": {"CreditLimit": NaN}}',
        "parse",
    ),
    "very-long-field-name": (envelope(data=contact(1, **{"K" * 100_000: "v"})), "validation"),
}
