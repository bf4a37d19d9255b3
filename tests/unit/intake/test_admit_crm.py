"""Intake of CRM-shaped records: a mapped route in our envelope, CloudEvents in both modes, and
raw payloads on a bound topic — all reach the same mapped, contract-checked Sage record."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr

from service.answers.outcomes import Stage
from service.dev.salesforce import (
    CONTACT_TOPIC,
    CONTACT_TYPE,
    binary_headers,
    change_event,
    cloudevent,
    contracts_with_xref,
    created_contact,
    envelope,
)
from service.intake.admit import Admitted, Intake, Refused
from service.intake.routes import load_route_table
from service.intake.topics import ReplyTopics
from service.tenants import Tenant, TenantDirectory
from tests.support.images import WithoutImages

ACCOUNT, JANE, JOHN = "001Dn00000ACMEaIAG", "003Dn00000JANE1IAG", "003Dn00000JOHN2IAG"
STRUCTURED = [("content-type", b"application/cloudevents+json")]


@pytest.fixture
def intake(tmp_path: Path) -> Intake:
    contracts = contracts_with_xref(
        tmp_path,
        accounts=[(ACCOUNT, "01", "ACME")],
        contacts=[(JANE, "JSMITH", "01", "ACME"), (JOHN, "JDOE", "01", "ACME")],
    )
    default = Tenant("1001", "ACME", SecretStr("t"))
    return WithoutImages(
        load_route_table(contracts),
        TenantDirectory({default.key: default}, default),
        1_000_000,
        ReplyTopics("sage.replies", frozenset({"crm.events", CONTACT_TOPIC}), "sage.dlt", None),
    )


def admitted(decision: Admitted | Refused) -> Admitted:
    assert isinstance(decision, Admitted), decision
    return decision


def test_envelope_cloudevents_and_raw_payload_map_to_the_same_record(intake: Intake) -> None:
    payload = created_contact(JANE, ACCOUNT, transaction="tx-1")
    envelope_record = admitted(intake.admit(orjson.dumps(envelope("e-1", payload))))
    structured = admitted(intake.admit(orjson.dumps(cloudevent("e-1", payload)), STRUCTURED))
    binary = admitted(intake.admit(orjson.dumps(payload), binary_headers("e-1")))
    raw = admitted(intake.admit(orjson.dumps(payload), (), CONTACT_TOPIC))
    for decision in (envelope_record, structured, binary):
        assert decision.event.event_id == "e-1" and decision.event.type == CONTACT_TYPE
    assert raw.event.event_id == "tx-1-1"  # transactionKey-sequenceNumber
    records = [d.event.data for d in (envelope_record, structured, binary, raw)]
    assert all(r == records[0] for r in records)
    assert records[0]["ContactName"] == "Jane Smith"
    assert envelope_record.identity == ("01", "ACME", "JSMITH")
    assert envelope_record.route.endpoint == "/customerContacts"


def test_several_record_ids_are_admitted_as_parts_of_one_event(intake: Intake) -> None:
    payload = change_event("UPDATE", [JANE, JOHN], changed=["Phone"], Phone="555")
    decision = admitted(intake.admit(orjson.dumps(envelope("e-2", payload))))
    assert decision.subject.event_id == "e-2"
    assert [p.event.event_id for p in decision.parts] == [f"e-2/{JANE}", f"e-2/{JOHN}"]
    assert [p.identity for p in decision.parts] == [
        ("01", "ACME", "JSMITH"),
        ("01", "ACME", "JDOE"),
    ]


def test_a_mapped_record_still_meets_its_contract(intake: Intake) -> None:
    long_name = {"FirstName": "Maximiliane", "LastName": "Oberhausen-Württemberg"}  # 34
    decision = intake.admit(
        orjson.dumps(envelope("e-3", created_contact(JANE, ACCOUNT, Name=long_name)))
    )
    assert isinstance(decision, Refused)
    assert decision.outcome.stage is Stage.VALIDATION
    assert decision.outcome.message == "ContactName: at most 30 characters, got 34"
    assert decision.subject.endpoint == "/customerContacts"


def test_a_delete_is_refused_at_route(intake: Intake) -> None:
    decision = intake.admit(orjson.dumps(envelope("e-4", change_event("DELETE", [JANE]))))
    assert isinstance(decision, Refused) and decision.outcome.stage is Stage.ROUTE
    assert decision.subject.event_id == "e-4"


@pytest.mark.parametrize(
    ("value", "headers", "expected"),
    [
        (b'{"specversion": "1.0", "id": "c1", "type": "t"', STRUCTURED, "not valid"),
        (b'{"specversion": "1.0", "type": "t", "data": {}}', STRUCTURED, "missing: id, source"),
        (b"{}", [("ce_specversion", b"1.0"), ("ce_type", b"t")], "missing: id, source"),
        (b"[1, 2]", binary_headers("c2"), "a JSON object is needed"),
        (b"not json", binary_headers("c3"), "a JSON object is needed"),
        (
            orjson.dumps({**cloudevent("c4", {}), "specversion": "0.3"}),
            STRUCTURED,
            "specversion must be 1.0",
        ),
    ],
)
def test_malformed_cloudevents_are_parse_errors(
    intake: Intake, value: bytes, headers: list[tuple[str, bytes]], expected: str
) -> None:
    decision = intake.admit(value, headers)
    assert isinstance(decision, Refused) and decision.outcome.stage is Stage.PARSE
    assert decision.outcome.message is not None and expected in decision.outcome.message


def test_a_raw_payload_without_its_event_id_fields_is_a_parse_error(intake: Intake) -> None:
    decision = intake.admit(b'{"Name": {"LastName": "Smith"}}', (), CONTACT_TOPIC)
    assert isinstance(decision, Refused) and decision.outcome.stage is Stage.PARSE
    assert decision.subject.type == CONTACT_TYPE


def test_records_without_cloudevents_headers_are_read_as_envelopes(intake: Intake) -> None:
    data = {"ARDivisionNo": "01", "CustomerNo": "A", "ContactCode": "C"}
    value = orjson.dumps({"event_id": "e-5", "type": "contact.upsert", "data": data})
    decision = admitted(intake.admit(value, [("traceparent", b"00-abc")], "crm.events"))
    assert decision.event.data == data
