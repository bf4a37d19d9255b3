"""``crm seed`` reading an export: Data Loader's CSV (upper-case API names, every value quoted,
``""`` for null; Salesforce's "Valid CSV Record Rows": a quote inside a value doubled) and JSON
lines, nested or flattened, into the image a CDC CREATE would have made."""

from __future__ import annotations

import io
from pathlib import Path

from service.intake.image_rules import Image, newer
from service.intake.routes import DEFAULT_CONTRACTS_DIR, load_route_table
from service.tools.crm_seed import Columns, read_rows

JANE = "003Dn00000JANE1IAG"


def columns() -> Columns:
    mapping = load_route_table(DEFAULT_CONTRACTS_DIR).routes["salesforce.contact.change"].mapping
    assert mapping is not None and mapping.image is not None
    return Columns(mapping.image)


def test_a_data_loader_row_becomes_the_image_a_create_would_make() -> None:
    export = io.StringIO(
        '"ID","FIRSTNAME","LASTNAME","SALUTATION","TITLE","MAILINGCITY","PHONE","LEADSOURCE"\n'
        f'"{JANE}","Jane","Smith","","Buyer, ""Senior""","Portland","","Web"\n'
    )
    [(number, row)] = list(read_rows(export, Path("contacts.csv")))
    assert number == 2 and not isinstance(row, str)
    assert columns().image(row) == (
        JANE,
        Image(
            {
                "Name": {"FirstName": "Jane", "LastName": "Smith"},
                "Title": 'Buyer, "Senior"',
                "MailingAddress": {"City": "Portland"},
            },
        ),
    )


def test_a_seeded_image_is_at_the_rows_last_change() -> None:
    """A change committed before the export's LastModifiedDate is not merged onto it."""
    export = io.StringIO(
        f'"ID","LASTNAME","LASTMODIFIEDDATE"\n"{JANE}","Smith","2025-12-01T12:00:00.000Z"\n'
    )
    [(_, row)] = list(read_rows(export, Path("contacts.csv")))
    assert not isinstance(row, str)
    _, image = columns().image(row)
    assert image.order == (1764590400000,)
    assert not newer((1764590399999, 5, 1), image)
    assert newer((1764590400000, 5, 1), image)


def test_json_lines_nested_or_flattened_and_bad_lines_named() -> None:
    export = io.StringIO(
        f'{{"Id": "{JANE}", "Name": {{"FirstName": "Jane", "LastName": null}}}}\n'
        "\n"
        f'{{"Id": "{JANE}", "LastName": "Smith", "Email": "j@example.com"}}\n'
        "[1]\n"
        "{not json\n"
    )
    rows = list(read_rows(export, Path("contacts.jsonl")))
    assert [n for n, _ in rows] == [1, 3, 4, 5]
    nested, flat = (columns().image(row) for _, row in rows[:2] if not isinstance(row, str))
    assert nested == (JANE, Image({"Name": {"FirstName": "Jane"}}))
    assert flat == (JANE, Image({"Name": {"LastName": "Smith"}, "Email": "j@example.com"}))
    assert rows[2][1] == "not a JSON object"
    assert isinstance(rows[3][1], str) and rows[3][1].startswith("not JSON")
