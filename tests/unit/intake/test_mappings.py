"""The mapping engine on Salesforce Change Data Capture payloads, and mapping files that must
refuse start-up."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from service.answers.outcomes import Stage
from service.dev.salesforce import change_event, contracts_with_xref, created_contact
from service.errors import ContractFileError
from service.intake.contracts import ErrorCode
from service.intake.mappings import Mapped, Mapping, Unmapped
from service.intake.routes import DEFAULT_CONTRACTS_DIR, load_route_table

ACCOUNT, OTHER_ACCOUNT = "001Dn00000ACMEaIAG", "001Dn00000UNKNwIAG"
JANE, JOHN = "003Dn00000JANE1IAG", "003Dn00000JOHN2IAG"


@pytest.fixture
def contracts(tmp_path: Path) -> Path:
    return contracts_with_xref(
        tmp_path,
        accounts=[(ACCOUNT, "01", "ACME")],
        contacts=[(JANE, "JSMITH", "01", "ACME"), (JOHN, "JDOE", "", "")],
    )


@pytest.fixture
def mapping(contracts: Path) -> Mapping:
    route = load_route_table(contracts).routes["salesforce.contact.change"]
    assert route.mapping is not None
    return route.mapping


def one(result: Mapped | Unmapped) -> dict[str, object]:
    assert isinstance(result, Mapped), result
    [(_, record)] = result.records
    return record


def test_create_maps_compound_fields_and_looks_up_the_keys(mapping: Mapping) -> None:
    record = one(
        mapping.apply(
            created_contact(JANE, ACCOUNT, Name={"FirstName": " Jane ", "LastName": "Smith  Jones"})
        )
    )
    assert record["ARDivisionNo"] == "01" and record["CustomerNo"] == "ACME"
    assert record["ContactCode"] == "JSMITH"
    assert record["ContactName"] == "Jane Smith Jones"  # trimmed, inner runs folded
    assert record["AddressLine1"] == "12 Harbour Road" and record["City"] == "Portland"
    assert record["State"] == "OR" and record["CountryCode"] == "US"  # case rule
    assert record["EmailAddress"] == "jane.smith@example.com"
    assert record["Salutation"] is None  # absent from the CREATE: sent as "no value"
    assert record["FaxNo"] is None


def test_update_sends_the_keys_and_the_changed_fields_only(mapping: Mapping) -> None:
    payload = change_event(
        "UPDATE",
        [JANE],
        changed=["Phone", "LastModifiedDate"],
        Phone="(503) 555-0199",
        LastModifiedDate="2026-12-01T13:00:00.000Z",
    )
    assert one(mapping.apply(payload)) == {
        "ARDivisionNo": "01",  # no AccountId in the update: from the contact's own row
        "CustomerNo": "ACME",
        "ContactCode": "JSMITH",
        "TelephoneNo1": "(503) 555-0199",
    }


def test_update_of_a_nulled_field_sends_null(mapping: Mapping) -> None:
    payload = change_event("UPDATE", [JANE], changed=["MobilePhone", "LastModifiedDate"])
    assert one(mapping.apply(payload))["TelephoneNo2"] is None


def test_update_of_half_a_joined_name_is_refused_not_half_sent(mapping: Mapping) -> None:
    payload = change_event("UPDATE", [JANE], changed=["Name.LastName"], Name={"LastName": "Jones"})
    result = mapping.apply(payload)
    assert isinstance(result, Unmapped) and result.stage is Stage.VALIDATION
    [error] = result.errors
    assert error.field == "ContactName" and error.code is ErrorCode.UNMAPPED
    assert "Name.FirstName" in result.message and "changes only Name.LastName" in result.message


def test_update_of_the_whole_name_rebuilds_it(mapping: Mapping) -> None:
    payload = change_event(
        "UPDATE",
        [JANE],
        changed=["Name.FirstName", "Name.LastName"],
        Name={"FirstName": "Janet", "LastName": "Jones"},
    )
    assert one(mapping.apply(payload))["ContactName"] == "Janet Jones"


def test_update_of_a_field_sent_as_a_diff_is_refused_not_sent_as_the_diff(
    mapping: Mapping,
) -> None:
    payload = change_event(
        "UPDATE", [JANE], changed=["Description"], Description="@@ -1,3 +1,4 @@\n-old\n+new"
    )
    payload["ChangeEventHeader"]["diffFields"] = ["Description"]
    result = mapping.apply(payload)
    assert isinstance(result, Unmapped)
    [error] = result.errors
    assert error.field == "ContactNotes" and "came as a diff" in str(error.detail)


def test_several_record_ids_make_one_record_each(mapping: Mapping) -> None:
    payload = change_event(
        "UPDATE", [JANE, JOHN], changed=["Title"], Title="Owner", AccountId=ACCOUNT
    )
    result = mapping.apply(payload)
    assert isinstance(result, Mapped)
    assert [(rid, r["ContactCode"], r["ContactTitle"]) for rid, r in result.records] == [
        (JANE, "JSMITH", "Owner"),
        (JOHN, "JDOE", "Owner"),
    ]


@pytest.mark.parametrize(
    ("change", "words"),
    [("DELETE", "documents no delete"), ("GAP_UPDATE", "gap event"), ("GAP_OVERFLOW", "gap")],
)
def test_delete_and_gap_events_are_refused_with_a_clear_message(
    mapping: Mapping, change: str, words: str
) -> None:
    result = mapping.apply(change_event(change, [JANE]))
    assert isinstance(result, Unmapped) and result.stage is Stage.ROUTE
    assert result.message.startswith(f"change type {change}: not sent")
    assert words in result.message


def test_a_gap_event_says_how_to_recover_with_record_images(mapping: Mapping) -> None:
    """Record images exist: the way back after a gap is a fresh seed of the record and one
    CREATE with its current values, not a bare re-read."""
    result = mapping.apply(change_event("GAP_UPDATE", [JANE]))
    assert isinstance(result, Unmapped)
    assert "sagebridge crm seed salesforce_contact FILE" in result.message
    assert "once as a CREATE" in result.message
    assert "re-read" not in result.message


def test_an_account_missing_from_the_cross_reference_names_it(mapping: Mapping) -> None:
    result = mapping.apply(created_contact(JANE, OTHER_ACCOUNT))
    assert isinstance(result, Unmapped) and result.stage is Stage.VALIDATION
    fields = {e.field: e.detail for e in result.errors}
    assert set(fields) == {"ARDivisionNo", "CustomerNo"}  # not papered over by the contact row
    assert fields["CustomerNo"] == (
        f"AccountId {OTHER_ACCOUNT!r} is not in look-up table salesforce_accounts"
    )


def test_a_contact_row_without_the_column_says_so(mapping: Mapping) -> None:
    result = mapping.apply(change_event("UPDATE", [JOHN], changed=["Phone"], Phone="1"))
    assert isinstance(result, Unmapped)
    assert f"record id {JOHN!r} has no ARDivisionNo in look-up table salesforce_contacts" in (
        result.message
    )


def test_declared_truncation_cuts_and_nothing_else_does(mapping: Mapping) -> None:
    record = one(
        mapping.apply(created_contact(JANE, ACCOUNT, Description="n" * 300, Title="T" * 40))
    )
    assert record["ContactNotes"] == "n" * 256  # declared: truncate 256
    assert record["ContactTitle"] == "T" * 40  # not declared: left for the contract to refuse


def test_truncation_counts_characters_not_code_points(mapping: Mapping) -> None:
    decomposed = unicodedata.normalize("NFD", "é" * 300)
    record = one(mapping.apply(created_contact(JANE, ACCOUNT, Description=decomposed)))
    assert record["ContactNotes"] == "é" * 256


def test_wildcard_record_ids_are_refused(mapping: Mapping) -> None:
    result = mapping.apply(change_event("UPDATE", ["003Dn00000*"], changed=["Phone"]))
    assert isinstance(result, Unmapped) and "wildcard" in result.message


def test_event_id_of_a_raw_payload(mapping: Mapping) -> None:
    payload = change_event("CREATE", [JANE], transaction="0002343d-9d90", sequence=3)
    assert mapping.event_id_of(payload) == "0002343d-9d90-3"
    assert mapping.event_id_of({"Name": {}}) is None


def test_every_shipped_mapping_produces_only_elements_its_contract_knows(
    contracts: Path,
) -> None:
    shipped = load_route_table(DEFAULT_CONTRACTS_DIR)
    with_rows = load_route_table(contracts)  # the same files, with cross-reference rows
    names = [t for t, r in shipped.routes.items() if r.mapping is not None]
    assert names, "the Salesforce route ships a mapping"
    for name in names:
        mapping = with_rows.routes[name].mapping
        assert mapping is not None
        assert set(mapping.elements) <= set(mapping.contract.elements)
        assert set(mapping.contract.keys) <= set(mapping.elements)
        full = created_contact(JANE, ACCOUNT, Description="d", Fax="1", MobilePhone="2")
        record = one(mapping.apply(full))
        assert set(record) == set(mapping.elements)
        assert mapping.contract.check(record) == []


def _write(contracts: Path, text: str) -> None:
    (contracts / "mappings" / "salesforce_contact.yaml").write_text(text, encoding="utf-8")


KEYS = """
  ARDivisionNo: {const: "01"}
  CustomerNo: {const: ACME}
  ContactCode: {record_id: true, truncate: 10}
"""


@pytest.mark.parametrize(
    ("elements", "expected"),
    [
        ("  Nickname: Name.FirstName\n", "Nickname is not an element of AR Customer Contact"),
        ("  ContactName: {path: Name.FirstName, truncate: 31}\n", "ContactName can be 31"),
        (
            "  State: {const: TEXAS}\n",
            "State can be 5 characters, but AR Customer Contact allows 2",
        ),
        ("  City: {lookup: nowhere, key: AccountId, column: City}\n", "no cross-reference table"),
        (
            "  City: {lookup: salesforce_accounts, key: AccountId, column: Town}\n",
            "has no column 'Town'",
        ),
        ("  City: {path: 'Name.[bad'}\n", "bad path"),
        ("  City: {path: City, case: shouting}\n", "case must be one of"),
        ("  City: {path: City, const: x}\n", "give exactly one of"),
    ],
)
def test_a_mapping_that_cannot_work_refuses_start_up_in_one_line(
    contracts: Path, elements: str, expected: str
) -> None:
    _write(contracts, f"contract: ar_customer_contact\nelements:{KEYS}{elements}")
    with pytest.raises(ContractFileError) as caught:
        load_route_table(contracts)
    message = str(caught.value)
    assert expected in message and "\n" not in message
    assert "salesforce_contact.yaml" in message


def test_a_mapping_that_never_fills_a_key_refuses_start_up(contracts: Path) -> None:
    _write(contracts, "contract: ar_customer_contact\nelements:\n  CustomerNo: {const: A}\n")
    with pytest.raises(ContractFileError, match=r"key elements \['ARDivisionNo', 'ContactCode'\]"):
        load_route_table(contracts)


def test_a_route_naming_an_unknown_mapping_refuses_start_up(contracts: Path) -> None:
    routes = contracts / "routes.yaml"
    routes.write_text(
        routes.read_text().replace("mapping: salesforce_contact", "mapping: hubspot"), "utf-8"
    )
    with pytest.raises(ContractFileError, match=r"no mapping mappings/hubspot\.yaml"):
        load_route_table(contracts)


def test_a_topic_bound_to_a_route_without_mapping_refuses_start_up(contracts: Path) -> None:
    routes = contracts / "routes.yaml"
    text = routes.read_text().replace(
        "salesforce.ContactChangeEvent: salesforce.contact.change",
        "salesforce.ContactChangeEvent: contact.upsert",
    )
    routes.write_text(text, "utf-8")
    with pytest.raises(ContractFileError, match="not a route with a mapping"):
        load_route_table(contracts)


def test_a_cross_reference_value_too_long_for_its_element_refuses_start_up(
    tmp_path: Path,
) -> None:
    contracts = contracts_with_xref(tmp_path, accounts=[(ACCOUNT, "01", "C" * 21)], contacts=[])
    with pytest.raises(ContractFileError, match="CustomerNo can be 21 characters"):
        load_route_table(contracts)


def test_a_cross_reference_id_listed_twice_refuses_start_up(tmp_path: Path) -> None:
    contracts = contracts_with_xref(
        tmp_path, accounts=[(ACCOUNT, "01", "A"), (ACCOUNT, "02", "B")], contacts=[]
    )
    with pytest.raises(ContractFileError, match="listed twice"):
        load_route_table(contracts)
