"""The demo's Salesforce part: Change Data Capture events for the shipped
``salesforce.contact.change`` mapping, valid ones and ones a real org produces that must be
refused, plus the cross-reference rows the mapping looks the CRM ids up in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from service.dev.demo.feed import ACME, FeedEvent
from service.dev.salesforce import (
    binary_headers,
    change_event,
    cloudevent,
    connect_json,
    contracts_with_xref,
    created_contact,
    envelope,
    flattened,
)

ACCOUNTS = [("001Dn00000SUMMTIAG", "01", "SUMMIT01"), ("001Dn00000HARBRIAG", "01", "HARBOR07")]
CONTACTS = [
    ("003Dn00000DEMO1IAG", "SFJSMITH", "01", "SUMMIT01"),
    ("003Dn00000DEMO2IAG", "SFAMULLER", "01", "SUMMIT01"),
    ("003Dn00000DEMO3IAG", "SFWCHEN", "01", "HARBOR07"),
]
UNKNOWN_ACCOUNT = "001Dn00000NOXREFIAG"
STRUCTURED = [("content-type", b"application/cloudevents+json")]


def demo_contracts(workdir: Path) -> Path:
    """The shipped contracts, with the demo's cross-reference rows."""
    return contracts_with_xref(workdir, ACCOUNTS, CONTACTS)


NAME_CHANGE = "sf-008"
"""The last-name UPDATE: its ContactName is rebuilt from the record's image."""


def salesforce_feed() -> list[FeedEvent]:
    """Nine change events: seven that land (one for two records at once, two as CloudEvents,
    one name with accents, a last-name change rebuilt from the record's image, one as Kafka
    Connect JSON with schemas in the Confluent connector's flattened shape) and two refused (an
    account nobody mapped, a delete). Each is keyed by its Salesforce record id, so changes to
    one contact keep their order; they are made in that order too, as their commit numbers
    rise (an image merges only changes after the one it is at)."""
    jane, anna, wei = (c[0] for c in CONTACTS)
    summit, harbor = ACCOUNTS[0][0], ACCOUNTS[1][0]
    renamed = {"FirstName": "Anaïs", "LastName": "Müller"}
    created = created_contact(jane, summit)
    phone = change_event("UPDATE", [jane], changed=["Phone"], Phone="(503) 555-0199")
    both = change_event("UPDATE", [jane, anna], changed=["Title"], Title="Owner")
    last_name = change_event(
        "UPDATE", [jane], changed=["Name.LastName", "LastModifiedDate"], Name={"LastName": "Birch"}
    )
    return [
        _event("CREATE with Name and MailingAddress", jane, envelope("sf-001", created)),
        _event("UPDATE of Phone only", jane, envelope("sf-002", phone)),
        _event("UPDATE of two records at once", jane, envelope("sf-003", both)),
        _event(
            "CREATE as a structured CloudEvent",
            anna,
            cloudevent("sf-004", created_contact(anna, summit, Name=renamed)),
            STRUCTURED,
        ),
        _event(
            "CREATE as a binary CloudEvent",
            wei,
            created_contact(wei, harbor),
            binary_headers("sf-005"),
            event_id="sf-005",
        ),
        _event(
            "CREATE, AccountId not in the look-up table",
            wei,
            envelope("sf-006", created_contact(wei, UNKNOWN_ACCOUNT)),
            refused=True,
        ),
        _event("DELETE", wei, envelope("sf-007", change_event("DELETE", [wei])), refused=True),
        _event("UPDATE of the last name only", jane, envelope(NAME_CHANGE, last_name)),
        _event(
            "CREATE as Connect JSON, flattened (Confluent)",
            wei,
            connect_json(envelope("sf-009", flattened(created_contact(wei, harbor)))),
            event_id="sf-009",
        ),
    ]


def name_change_line(records: list[dict[str, Any]]) -> str:
    """What Sage received for the last-name UPDATE (the sandbox's records, in order)."""
    code = CONTACTS[0][1]
    sent = [r["record"] for r in records if r["record"].get("ContactCode") == code]
    last = sent[-1] if sent else None
    if last is None or "Birch" not in str(last.get("ContactName")):
        return f"  {NAME_CHANGE}  the last-name change did not reach Sage"
    return (
        f"  {NAME_CHANGE}  Sage received {orjson.dumps(last).decode()} "
        "(ContactName rebuilt from the record's image; untouched elements left out)"
    )


def _event(
    note: str,
    record_id: str,
    value: dict[str, Any],
    headers: list[tuple[str, bytes]] | None = None,
    *,
    event_id: str | None = None,
    refused: bool = False,
) -> FeedEvent:
    kind = "invalid:salesforce" if refused else "salesforce"
    known_id = event_id or str(value.get("event_id") or value.get("id"))
    return FeedEvent(
        kind, ACME, record_id.encode(), orjson.dumps(value), known_id, tuple(headers or ()), note
    )
