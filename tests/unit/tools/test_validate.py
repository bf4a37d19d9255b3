"""``sagebridge validate``: every problem printed with its line, exit 1 when any event is bad."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from service.cli import main
from service.config import Settings, load_settings
from service.tools.validate import validate_lines

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture
def settings() -> Settings:
    return load_settings()


def contact(code: str = "JSMITH", **fields: Any) -> dict[str, Any]:
    return {
        "ARDivisionNo": "01",
        "CustomerNo": "ABC",
        "ContactCode": code,
        "ContactName": "Jane Smith",
        **fields,
    }


def line(event_id: str, data: dict[str, Any], type: str = "contact.upsert", **extra: Any) -> str:
    return json.dumps({"event_id": event_id, "type": type, "data": data, **extra})


def run(text: str, settings: Settings) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = validate_lines(io.StringIO(text), out, settings)
    return code, out.getvalue().splitlines()


def test_a_valid_feed_exits_zero(settings: Settings) -> None:
    text = "\n".join(
        [
            line("crm-1", contact()),
            "",  # blank lines are skipped, not counted
            line("crm-2", {"ARDivisionNo": "01", "CustomerNo": "ABC"}, type="customer.upsert"),
            line("crm-3", {"InvoiceNo": "INV-1", "Amount": 12.5}, type="ar_invoice.create"),
            # Any tenant is fine offline: there is no tenant configuration to check against.
            line("crm-4", contact(), tenant={"customer": "9999", "company": "NOWHERE"}),
        ]
    )
    assert run(text + "\n", settings) == (0, ["4 events, 0 invalid"])


def test_each_problem_is_printed_with_its_line_number(settings: Settings) -> None:
    text = "\n".join(
        [
            line("crm-1", contact()),
            line("crm-2", contact(ContactName="x" * 41)),
            line("crm-3", {"ARDivisionNo": "01", "CustomerNo": "ABC", "Nickname": "J"}),
            "",
            '{"type": "contact.upsert", "data": {}}',
            "this is not json",
            line("crm-7", contact(), type="contact.delete"),
            "[1, 2]",
        ]
    )
    code, lines = run(text, settings)
    assert code == 1
    assert lines[0] == "line 2 (crm-2): ContactName: at most 30 characters, got 41 [too_long]"
    # One line per field problem, missing keys first.
    assert lines[1] == "line 3 (crm-3): ContactCode: required key element is missing [missing]"
    assert lines[2] == "line 3 (crm-3): Nickname: not an element of this table [unknown_field]"
    assert lines[3] == "line 5: event_id: required, a string of 1-128 characters"
    assert lines[4].startswith("line 6: not valid UTF-8 JSON")
    assert lines[5].startswith("line 7 (crm-7): type: no route for 'contact.delete'")
    assert lines[6] == "line 8: expected a JSON object, got an array"
    assert lines[7] == "7 events, 6 invalid"
    assert len(lines) == 8


def test_bytes_that_are_not_utf8_are_reported_not_fatal(settings: Settings) -> None:
    raw = (line("crm-1", contact()) + "\n").encode() + b'{"event_id": "\xff\xfe"}\n'
    stream = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8")  # strict, like sys.stdin
    out = io.StringIO()
    assert validate_lines(stream, out, settings) == 1
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("line 2: not valid UTF-8 JSON")
    assert lines[-1] == "2 events, 1 invalid"


def test_console_entry_point(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(line("crm-1", contact()) + "\n", encoding="utf-8")
    assert main(["validate", str(good)]) == 0
    assert capsys.readouterr().out == "1 events, 0 invalid\n"

    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(
        (line("crm-1", contact(ContactName="x" * 41)) + "\n").encode() + b"\xc3\x28 junk\n"
    )
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "line 1 (crm-1): ContactName: at most 30 characters, got 41 [too_long]"
    assert out[1].startswith("line 2: not valid UTF-8 JSON")
    assert out[2] == "2 events, 2 invalid"
