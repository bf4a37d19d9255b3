"""The Salesforce mapping on the shapes producers write (tests/fixtures/salesforce/README.md):
the Confluent connector's flattened compound fields, Salesforce's nested ones, State or
StateCode, and payload values of the wrong shape, which are refused naming the path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from service.dev.salesforce import change_event, contracts_with_xref
from service.intake.mappings import Mapped, Mapping, Unmapped
from service.intake.routes import load_route_table

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "salesforce"
CONNECT = json.loads((FIXTURE / "confluent_cdc_contact_create.connect.json").read_text())
RECORD = CONNECT["payload"]["Id"]
ACCOUNT = "001Dn00000ACMEaIAG"


@pytest.fixture(scope="module")
def mapping(tmp_path_factory: pytest.TempPathFactory) -> Mapping:
    contracts = contracts_with_xref(
        tmp_path_factory.mktemp("crm"),
        accounts=[(ACCOUNT, "01", "ACME")],
        contacts=[(RECORD, "JDOE", "01", "ACME")],
    )
    route = load_route_table(contracts).routes["salesforce.contact.change"]
    assert route.mapping is not None
    return route.mapping


def connector(**fields: Any) -> dict[str, Any]:
    payload = copy.deepcopy(CONNECT["payload"])
    payload.update({"AccountId": ACCOUNT, **fields})
    return payload


def one(result: Mapped | Unmapped) -> dict[str, Any]:
    assert isinstance(result, Mapped), result
    [(_, record)] = result.records
    return record


def test_the_connectors_flattened_fields_fill_name_and_address(mapping: Mapping) -> None:
    payload = connector(
        MailingStreet="1 Main St",
        MailingCity="Salem",
        MailingState="or",
        MailingCountry="us",
        MailingAddress={"State": "or", "City": "Salem", "Street": "1 Main St", "Country": "us"},
    )
    record = one(mapping.apply(payload))
    assert record["ContactName"] == "John_1241 Doe_19419"
    assert (record["City"], record["State"], record["CountryCode"]) == ("Salem", "OR", "US")
    assert record["AddressLine1"] == "1 Main St"


def test_flattened_without_the_struct_and_published_as_is(mapping: Mapping) -> None:
    record = one(mapping.apply(connector()))  # the published record: no address at all
    assert record["ContactName"] == "John_1241 Doe_19419" and record["City"] is None


def test_a_flattened_update_counts_as_the_component(mapping: Mapping) -> None:
    payload = change_event("UPDATE", [RECORD], changed=["MailingCity"], MailingCity="Bend")
    assert one(mapping.apply(payload)) == {
        "ARDivisionNo": "01",
        "CustomerNo": "ACME",
        "ContactCode": "JDOE",
        "City": "Bend",
    }


def test_state_from_state_when_there_is_no_state_code(mapping: Mapping) -> None:
    payload = change_event(
        "UPDATE", [RECORD], changed=["MailingAddress.State"], MailingAddress={"State": "wa"}
    )
    assert one(mapping.apply(payload))["State"] == "WA"


@pytest.mark.parametrize(
    ("fields", "field", "detail"),
    [
        (
            {"FirstName": 5, "LastName": ["x"]},
            "ContactName",
            "Name.FirstName: expected text, found a number (5)",
        ),
        ({"Phone": {"x": 1}}, "TelephoneNo1", "Phone: expected a single value, found an object"),
        ({"Title": 7}, "ContactTitle", "Title: expected text, found a number (7)"),
        (
            {"AccountId": 42},
            "ARDivisionNo",
            "AccountId: expected text (a CRM id), found a number (42)",
        ),
    ],
)
def test_a_value_of_the_wrong_shape_names_the_path(
    mapping: Mapping, fields: dict[str, Any], field: str, detail: str
) -> None:
    result = mapping.apply(connector(**fields))
    assert isinstance(result, Unmapped) and result.stage == "validation"
    assert any(
        e.field == field and e.code == "wrong_type" and e.detail == detail for e in result.errors
    )


@pytest.mark.parametrize("name", [["Jane", "Smith"], 5, "Jane Smith"])
def test_a_compound_field_that_is_not_an_object_is_refused(mapping: Mapping, name: Any) -> None:
    payload = connector(Name=name, FirstName=None, LastName=None, Salutation=None)
    result = mapping.apply(payload)
    assert isinstance(result, Unmapped) and result.message.startswith("Name: expected an object")


def test_record_ids_beyond_the_bound_are_refused_whole(mapping: Mapping) -> None:
    payload = change_event("UPDATE", [f"003Dn{i:013d}" for i in range(11)], changed=["Title"])
    result = mapping.apply(payload, max_record_ids=10)
    assert isinstance(result, Unmapped)
    assert "record ids: 11, more than the 10" in result.message
