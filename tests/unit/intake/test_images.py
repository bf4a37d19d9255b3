"""Merging a Salesforce change into its record's image and building the Sage record from it
(pure: an :class:`ImageBook` stands in for Redis). Event shapes as in the CDC Developer Guide
("Get Compound Fields in Change Events", "Change Event Body Fields")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service.dev.salesforce import change_event, contracts_with_xref, created_contact, flattened
from service.intake.image_rules import Image
from service.intake.images import ImageBook, build
from service.intake.mappings import Mapped, Mapping, Unmapped
from service.intake.routes import load_route_table

ACCOUNT, JANE = "001Dn00000ACMEaIAG", "003Dn00000JANE1IAG"
KEY = ("salesforce_contact", JANE)
KEYS = {"ARDivisionNo": "01", "CustomerNo": "ACME", "ContactCode": "JSMITH"}


@pytest.fixture
def mapping(tmp_path: Path) -> Mapping:
    contracts = contracts_with_xref(
        tmp_path, accounts=[(ACCOUNT, "01", "ACME")], contacts=[(JANE, "JSMITH", "01", "ACME")]
    )
    found = load_route_table(contracts).routes["salesforce.contact.change"].mapping
    assert found is not None and found.image is not None
    return found


def record(result: Mapped | Unmapped) -> dict[str, Any]:
    assert isinstance(result, Mapped), result
    [(_, built)] = result.records
    return built


def update(**fields: Any) -> dict[str, Any]:
    changed = fields.pop("changed")
    return change_event("UPDATE", [JANE], changed=changed, **fields)


def test_a_component_change_merges_into_the_compound_field(mapping: Mapping) -> None:
    book = ImageBook({})
    record(build(mapping, created_contact(JANE, ACCOUNT), book, 100_000))
    built = record(
        build(mapping, update(changed=["Name.LastName"], Name={"LastName": "Birch"}), book, 1 << 20)
    )
    assert built == {**KEYS, "ContactName": "Jane Birch"}
    image = book.get(KEY)
    assert image is not None
    assert image.fields["Name"] == {"Salutation": "Ms.", "FirstName": "Jane", "LastName": "Birch"}
    assert book.changed[KEY] == image


def test_unchanged_fields_sent_as_null_do_not_clear_the_image(mapping: Mapping) -> None:
    """Pub/Sub API clients get every field, unchanged ones empty: only changedFields count."""
    book = ImageBook({})
    build(mapping, created_contact(JANE, ACCOUNT), book, 1 << 20)
    event = update(changed=["Phone"], Phone="555", Title=None, Name=None)
    assert record(build(mapping, event, book, 1 << 20)) == {**KEYS, "TelephoneNo1": "555"}
    image = book.get(KEY)
    assert image is not None and image.fields["Title"] == "Buyer" and "Name" in image.fields


def test_nulled_fields_clear_the_image_and_the_element(mapping: Mapping) -> None:
    book = ImageBook({})
    build(mapping, created_contact(JANE, ACCOUNT), book, 1 << 20)
    event = update(changed=["Title", "Name.Salutation"], nulled=["Title", "Name.Salutation"])
    built = record(build(mapping, event, book, 1 << 20))
    assert built == {**KEYS, "ContactTitle": None, "Salutation": None}
    image = book.get(KEY)
    assert image is not None and "Title" not in image.fields
    assert "Salutation" not in image.fields["Name"]


def test_a_change_not_newer_than_the_image_is_not_merged(mapping: Mapping) -> None:
    older = update(changed=["Name.LastName"], Name={"LastName": "Birch"})
    newer = update(changed=["Name.LastName"], Name={"LastName": "Cole"})
    book = ImageBook({KEY: Image({"Name": {"FirstName": "Jane", "LastName": "Smith"}})})
    build(mapping, newer, book, 1 << 20)
    built = record(build(mapping, older, book, 1 << 20))
    assert built["ContactName"] == "Jane Cole"
    image = book.get(KEY)
    assert image is not None and image.fields["Name"]["LastName"] == "Cole"


def test_an_update_without_an_image_is_refused_with_the_seed_hint(mapping: Mapping) -> None:
    book = ImageBook({})
    refused = build(mapping, update(changed=["Name.LastName"], Name={"LastName": "B"}), book, 1)
    assert isinstance(refused, Unmapped)
    assert "no image of record" in refused.message
    assert "sagebridge crm seed salesforce_contact FILE" in refused.message
    assert book.changed == {}  # never an image made from an UPDATE


def test_a_field_sent_as_a_diff_becomes_unknown(mapping: Mapping) -> None:
    book = ImageBook({})
    build(mapping, created_contact(JANE, ACCOUNT, Description="long"), book, 1 << 20)
    diffed = update(changed=["Description"], Description="@@ -1 +1 @@")
    diffed["ChangeEventHeader"]["diffFields"] = ["Description"]
    assert isinstance(build(mapping, diffed, book, 1 << 20), Unmapped)
    image = book.get(KEY)
    assert image is not None and "Description" not in image.fields
    assert image.unknown == frozenset({"Description"})


def test_delete_and_gap_events_drop_the_image(mapping: Mapping) -> None:
    for change in ("DELETE", "GAP_UPDATE"):
        book = ImageBook({KEY: Image({"Title": "Buyer"})})
        assert isinstance(build(mapping, change_event(change, [JANE]), book, 1 << 20), Unmapped)
        assert book.changed == {KEY: None}


def test_an_image_over_the_bound_is_refused_and_dropped(mapping: Mapping) -> None:
    book = ImageBook({KEY: Image({"Title": "Buyer"})})
    event = update(changed=["Description"], Description="x" * 500)
    refused = build(mapping, event, book, 300)
    assert isinstance(refused, Unmapped) and "SAGEBRIDGE_IMAGE_MAX_BYTES (300)" in refused.message
    assert book.changed == {KEY: None}


def test_an_unreadable_store_drops_what_it_would_have_kept(mapping: Mapping) -> None:
    """Redis did not answer: whatever it stores missed this change, so it goes when it can."""
    book = ImageBook({}, available=False)
    record(build(mapping, created_contact(JANE, ACCOUNT), book, 1 << 20))
    assert book.changed == {KEY: None}


def test_the_confluent_connectors_flattened_changes_merge_like_salesforces_own(
    mapping: Mapping,
) -> None:
    """The Confluent Salesforce CDC source connector flattens compound fields (`Name` null,
    `FirstName`/`LastName` at the top; tests/fixtures/salesforce/README.md) and its header's
    changedFields name the flat field: a CREATE and then a last-name UPDATE in that shape
    build the same image and the same rebuilt ContactName as Salesforce's nested shape."""
    book = ImageBook({})
    record(build(mapping, flattened(created_contact(JANE, ACCOUNT)), book, 1 << 20))
    change = flattened(update(changed=["LastName"], Name={"LastName": "Birch"}))
    built = record(build(mapping, change, book, 1 << 20))
    assert built == {**KEYS, "ContactName": "Jane Birch"}
    image = book.get(KEY)
    assert image is not None
    assert image.fields["Name"]["FirstName"] == "Jane"
    assert image.fields["Name"]["LastName"] == "Birch"
