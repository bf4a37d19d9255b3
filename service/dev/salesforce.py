"""Salesforce Change Data Capture payloads, as the tests, the demo and docs/crm-input.md use
them.

A ``ContactChangeEvent`` as the Salesforce CDC source connector puts it on Kafka: the
``ChangeEventHeader`` (entity, change type, record ids, changed fields, commit data) beside the
record's fields, with the compound fields ``Name`` and ``MailingAddress`` as objects. A CREATE
or UNDELETE carries every non-null field; an UPDATE only the changed ones (listed, with
``LastModifiedDate``, in ``changedFields``); a DELETE and a GAP_* event only the header.

Also the cross-reference tables the shipped ``salesforce_contact`` mapping needs, written into a
copy of ``contracts/`` so a test or the demo never edits the shipped files.
"""

from __future__ import annotations

import itertools
import shutil
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from service.config import DEFAULT_CONTRACTS_DIR

CONTACT_TOPIC = "salesforce.ContactChangeEvent"
CONTACT_TYPE = "salesforce.contact.change"

_COMMITS = itertools.count(11590000123)
"""Commit numbers rise with every change made here, as Salesforce's do (record images merge
only changes after the one they are at)."""


def change_event(
    change_type: str,
    record_ids: Sequence[str],
    *,
    changed: Sequence[str] = (),
    transaction: str | None = None,
    sequence: int = 1,
    nulled: Sequence[str] = (),
    **fields: Any,
) -> dict[str, Any]:
    """A ContactChangeEvent payload; ``fields`` are the record's (``Name={...}``, ``Phone=``),
    ``nulled`` the fields an UPDATE set to null (``nulledFields``)."""
    header = {
        "entityName": "Contact",
        "recordIds": list(record_ids),
        "changeType": change_type,
        "changeOrigin": "com/salesforce/api/rest/60.0;client=sagebridge-demo",
        "transactionKey": transaction or str(uuid.uuid4()),
        "sequenceNumber": sequence,
        "commitTimestamp": 1764590400000,
        "commitNumber": next(_COMMITS),
        "commitUser": "005Dn000003XkTmIAK",
        "changedFields": list(changed),
        "diffFields": [],
        "nulledFields": list(nulled),
    }
    return {"ChangeEventHeader": header, **fields}


def created_contact(record_id: str, account_id: str, **fields: Any) -> dict[str, Any]:
    """A CREATE with the compound fields a new contact usually has."""
    body: dict[str, Any] = {
        "Name": {"Salutation": "Ms.", "FirstName": "Jane", "LastName": "Smith"},
        "AccountId": account_id,
        "Title": "Buyer",
        "MailingAddress": {
            "Street": "12 Harbour Road",
            "City": "Portland",
            "StateCode": "or",
            "PostalCode": "97201",
            "CountryCode": "us",
        },
        "Phone": "(503) 555-0142",
        "Email": "Jane.Smith@Example.com",
        "CreatedDate": "2026-12-01T12:00:00.000Z",
        "LastModifiedDate": "2026-12-01T12:00:00.000Z",
        **fields,
    }
    return change_event("CREATE", [record_id], **body)


def flattened(payload: dict[str, Any]) -> dict[str, Any]:
    """A payload in the Confluent Salesforce CDC source connector's shape: the compound
    fields' components at the top level (``FirstName``, ``MailingCity``), ``Name`` null and
    the address struct without ``StateCode``/``CountryCode`` (see
    tests/fixtures/salesforce/README.md for the published record this follows)."""
    out = dict(payload)
    name, address = out.pop("Name", None) or {}, out.pop("MailingAddress", None) or {}
    out.update({k: name.get(k) for k in ("Salutation", "FirstName", "LastName")}, Name=None)
    street, city = address.get("Street"), address.get("City")
    state = address.get("StateCode") or address.get("State")
    country = address.get("CountryCode") or address.get("Country")
    postal = address.get("PostalCode")
    out.update(
        MailingStreet=street,
        MailingCity=city,
        MailingState=state,
        MailingPostalCode=postal,
        MailingCountry=country,
        MailingAddress={
            "Street": street,
            "City": city,
            "State": state,
            "PostalCode": postal,
            "Country": country,
        },
    )
    return out


def connect_json(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` as Kafka Connect's JsonConverter writes it with ``schemas.enable=true`` (its
    default): a ``schema`` beside the ``payload``. Only the payload is read."""
    return {
        "schema": {"type": "struct", "optional": False, "name": "sagebridge.demo.Envelope"},
        "payload": value,
    }


def envelope(event_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload inside our own envelope, for an input topic shared with other events."""
    return {"event_id": event_id, "type": CONTACT_TYPE, "data": payload}


def cloudevent(event_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as a structured-mode CloudEvent (``application/cloudevents+json``)."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "type": CONTACT_TYPE,
        "source": "/salesforce/orgs/00DDn00000ABCDE/ContactChangeEvent",
        "datacontenttype": "application/json",
        "data": payload,
    }


def binary_headers(event_id: str) -> list[tuple[str, bytes]]:
    """The ``ce_*`` headers of a binary-mode CloudEvent whose value is the payload."""
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_type", CONTACT_TYPE.encode()),
        ("ce_source", b"/salesforce/orgs/00DDn00000ABCDE/ContactChangeEvent"),
        ("content-type", b"application/json"),
    ]


def contracts_with_xref(
    directory: Path,
    accounts: Iterable[tuple[str, str, str]],
    contacts: Iterable[tuple[str, str, str, str]],
) -> Path:
    """A copy of the shipped ``contracts/`` in ``directory`` with these cross-reference rows:
    accounts ``(AccountId, ARDivisionNo, CustomerNo)``, contacts ``(ContactId, ContactCode,
    ARDivisionNo, CustomerNo)``."""
    target = directory / "contracts"
    shutil.copytree(DEFAULT_CONTRACTS_DIR, target, dirs_exist_ok=True)
    _csv(
        target / "xref" / "salesforce_accounts.csv",
        ["AccountId", "ARDivisionNo", "CustomerNo"],
        accounts,
    )
    _csv(
        target / "xref" / "salesforce_contacts.csv",
        ["ContactId", "ContactCode", "ARDivisionNo", "CustomerNo"],
        contacts,
    )
    return target


def _csv(path: Path, header: list[str], rows: Iterable[Sequence[str]]) -> None:
    lines = [",".join(header), *(",".join(row) for row in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def encoded(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload)
