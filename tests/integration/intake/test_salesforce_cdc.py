"""Salesforce Change Data Capture end to end: ContactChangeEvents on Kafka (in our envelope,
as CloudEvents in both modes, and raw on a bound topic) -> mapped AR Customer Contacts at the
sandbox over HTTP -> one reply per event."""

from __future__ import annotations

import unicodedata
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from service.dev.events import produce
from service.dev.salesforce import (
    binary_headers,
    change_event,
    cloudevent,
    contracts_with_xref,
    created_contact,
    envelope,
)
from service.dev.sandbox.client import stats as sandbox_stats
from service.dev.sandbox.client import stored_records
from service.dev.topics import Topics, create_topics
from tests.support.kafka import Collector

ACCOUNT, UNKNOWN_ACCOUNT = "001Dn00000ACMEaIAG", "001Dn00000NOPEaIAG"
JANE, JOHN, ANNA = "003Dn00000JANE1IAG", "003Dn00000JOHN2IAG", "003Dn00000ANNA3IAG"
STRUCTURED = [("content-type", b"application/cloudevents+json")]


@pytest.fixture
def crm_contracts(tmp_path: Path, topics: Topics) -> Path:
    """The shipped contracts with cross-reference rows, and the Salesforce topic binding
    pointed at this test's own topic."""
    contracts = contracts_with_xref(
        tmp_path,
        accounts=[(ACCOUNT, "01", "ACME")],
        contacts=[
            (JANE, "JSMITH", "01", "ACME"),
            (JOHN, "JDOE", "01", "ACME"),
            (ANNA, "AMULLER", "01", "ACME"),
        ],
    )
    routes = contracts / "routes.yaml"
    text = routes.read_text("utf-8").replace("salesforce.ContactChangeEvent:", f"{bound(topics)}:")
    routes.write_text(text, "utf-8")
    return contracts


def bound(topics: Topics) -> str:
    return f"sf-{topics.events}"


Send = Callable[..., Awaitable[dict[str, dict[str, Any]]]]


@pytest.fixture
def send(
    running_service: Any,
    crm_contracts: Path,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    sandbox: Any,
) -> Send:
    """``await send(messages, topic=None)``: the service runs with the Salesforce contracts
    while ``messages`` are produced; the replies by event_id once there is one per message."""

    async def run(messages: list[Any], *, topic: str | None = None) -> dict[str, dict[str, Any]]:
        await create_topics(kafka_bootstrap, [bound(topics)])
        async with running_service(
            contracts_dir=crm_contracts, input_topics=f"{topics.events},{bound(topics)}"
        ):
            await produce(kafka_bootstrap, topic or topics.events, messages)
            replies = await collector.wait_for(topics.replies, len(messages))
        return {r.json()["event_id"]: r.json() for r in replies}

    return run


async def test_create_with_compound_fields_lands_mapped(send: Send, sandbox: Any) -> None:
    payload = created_contact(
        JANE, ACCOUNT, Name={"Salutation": "Dr.", "FirstName": "Jane", "LastName": "Smith"}
    )
    replies = await send(
        [(JANE.encode(), envelope("sf-create", payload))],
    )
    reply = replies["sf-create"]
    assert reply["response"] == "SUCCESS" and reply["type"] == "salesforce.contact.change"
    assert reply["endpoint"] == "/customerContacts"
    [stored] = await stored_records(sandbox, "/customerContacts")
    assert stored["record"] == {
        "ARDivisionNo": "01",
        "CustomerNo": "ACME",
        "ContactCode": "JSMITH",
        "ContactName": "Jane Smith",
        "Salutation": "Dr.",
        "ContactTitle": "Buyer",
        "AddressLine1": "12 Harbour Road",
        "City": "Portland",
        "State": "OR",
        "ZipCode": "97201",
        "CountryCode": "US",
        "TelephoneNo1": "(503) 555-0142",
        "TelephoneNo2": None,
        "FaxNo": None,
        "EmailAddress": "jane.smith@example.com",
        "ContactNotes": None,
    }


async def test_update_sends_the_keys_and_changed_fields_only(send: Send, sandbox: Any) -> None:
    payload = change_event(
        "UPDATE",
        [JANE],
        changed=["Phone", "MailingAddress.City", "LastModifiedDate"],
        Phone="(503) 555-0199",
        MailingAddress={"City": "Salem"},
        LastModifiedDate="2026-12-01T13:00:00.000Z",
    )
    replies = await send(
        [(JANE.encode(), envelope("sf-update", payload))],
    )
    assert replies["sf-update"]["response"] == "SUCCESS"
    [stored] = await stored_records(sandbox, "/customerContacts")
    assert stored["record"] == {
        "ARDivisionNo": "01",
        "CustomerNo": "ACME",
        "ContactCode": "JSMITH",
        "City": "Salem",
        "TelephoneNo1": "(503) 555-0199",
    }


async def test_several_record_ids_become_one_record_each_and_one_reply(
    send: Send, topics: Topics, collector: Collector, sandbox: Any
) -> None:
    # Made first, so its commit number is the lower: on another key, "sf-after" may be taken in
    # before "sf-many", and a record image merges only changes after the one it is at.
    after = created_contact(JOHN, ACCOUNT)
    payload = change_event(
        "UPDATE", [JANE, JOHN, ANNA], changed=["Title", "LastModifiedDate"], Title="Owner"
    )
    replies = await send(
        [
            (JANE.encode(), envelope("sf-many", payload)),
            (b"after", envelope("sf-after", after)),
        ],
    )
    assert replies["sf-many"]["response"] == "SUCCESS"
    assert replies["sf-after"]["response"] == "SUCCESS"
    assert len(collector.messages[topics.replies]) == 2  # one per event, not per record
    codes = sorted(
        r["record"]["ContactCode"]
        for r in await stored_records(sandbox, "/customerContacts")
        if r["record"].get("ContactTitle") == "Owner"
    )
    assert codes == ["AMULLER", "JDOE", "JSMITH"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("DELETE", "change type DELETE: not sent: the Cloud Connector documents no delete"),
        ("GAP_UPDATE", "change type GAP_UPDATE: not sent: Salesforce could not produce"),
    ],
)
async def test_delete_and_gap_events_are_refused_and_dead_lettered(
    change: str, expected: str, send: Send, topics: Topics, collector: Collector, sandbox: Any
) -> None:
    replies = await send(
        [(JANE.encode(), envelope("sf-refused", change_event(change, [JANE])))],
    )
    reply = replies["sf-refused"]
    assert reply["response"] == "ERROR" and reply["stage"] == "route"
    assert reply["message"].startswith(expected)
    [dead] = await collector.wait_for(topics.dlt, 1)
    assert dead.headers["x-event-id"] == b"sf-refused"
    assert (await sandbox_stats(sandbox))["calls"] == 0


async def test_an_account_missing_from_the_cross_reference_is_a_validation_error(
    send: Send, topics: Topics, collector: Collector, sandbox: Any
) -> None:
    replies = await send(
        [(JANE.encode(), envelope("sf-no-account", created_contact(JANE, UNKNOWN_ACCOUNT)))],
    )
    reply = replies["sf-no-account"]
    assert reply["response"] == "ERROR" and reply["stage"] == "validation"
    missing = f"AccountId {UNKNOWN_ACCOUNT!r} is not in look-up table salesforce_accounts"
    assert reply["errors"] == [
        {"field": "ARDivisionNo", "code": "unmapped", "detail": missing},
        {"field": "CustomerNo", "code": "unmapped", "detail": missing},
    ]
    assert f"CustomerNo: {missing}" in reply["message"]
    await collector.wait_for(topics.dlt, 1)
    assert (await sandbox_stats(sandbox))["calls"] == 0


async def test_accented_names_count_characters_at_the_length_limit(
    send: Send, sandbox: Any
) -> None:
    # 30 characters as Sage counts them, typed with combining accents (more code points).
    nfd = {"FirstName": "Anaïs-Éloïse", "LastName": "Lüdenscheid-Märkl"}
    at_limit = {k: unicodedata.normalize("NFD", v) for k, v in nfd.items()}
    over = {"FirstName": "Anaïs-Éloïse", "LastName": "Müller-Lüdenscheidt"}
    name = f"{at_limit['FirstName']} {at_limit['LastName']}"
    assert len(unicodedata.normalize("NFC", name)) == 30 and len(name) > 30
    replies = await send(
        [
            (ANNA.encode(), envelope("sf-at-limit", created_contact(ANNA, ACCOUNT, Name=at_limit))),
            (JOHN.encode(), envelope("sf-over", created_contact(JOHN, ACCOUNT, Name=over))),
        ],
    )
    assert replies["sf-at-limit"]["response"] == "SUCCESS"
    assert replies["sf-over"]["errors"] == [
        {"field": "ContactName", "code": "too_long", "limit": 30, "actual": 32}
    ]
    [stored] = await stored_records(sandbox, "/customerContacts")
    assert stored["record"]["ContactName"] == name  # as sent: never cut


async def test_cloudevents_in_structured_and_binary_mode(send: Send, sandbox: Any) -> None:
    messages = [
        (JANE.encode(), cloudevent("ce-structured", created_contact(JANE, ACCOUNT)), STRUCTURED),
        (JOHN.encode(), created_contact(JOHN, ACCOUNT), binary_headers("ce-binary")),
        (b"bad", b'{"specversion": "1.0", "type": "salesforce.contact.change"}', STRUCTURED),
        (b"bad-data", b"not json", binary_headers("ce-bad-data")),
    ]
    replies = await send(messages)
    assert replies["ce-structured"]["response"] == "SUCCESS"
    assert replies["ce-binary"]["response"] == "SUCCESS"
    assert replies[None]["stage"] == "parse"
    assert "required attributes missing: id, source" in replies[None]["message"]
    assert replies["ce-bad-data"]["stage"] == "parse"
    codes = {r["record"]["ContactCode"] for r in await stored_records(sandbox, "/customerContacts")}
    assert codes == {"JSMITH", "JDOE"}


async def test_raw_payloads_on_a_bound_topic(send: Send, topics: Topics, sandbox: Any) -> None:
    payload = created_contact(JANE, ACCOUNT, transaction="0002343d-9d90-e395", sequence=2)
    replies = await send(
        [(JANE.encode(), payload)],
        topic=bound(topics),
    )
    reply = replies["0002343d-9d90-e395-2"]
    assert reply["response"] == "SUCCESS" and reply["type"] == "salesforce.contact.change"
    [stored] = await stored_records(sandbox, "/customerContacts")
    assert stored["record"]["ContactCode"] == "JSMITH"
