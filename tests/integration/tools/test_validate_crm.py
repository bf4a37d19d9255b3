"""``sagebridge validate --explain`` on Salesforce change events, as the command runs: the
mapping applied offline with the operator's cross-reference tables, the mapped record shown."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from service.dev.salesforce import change_event, contracts_with_xref, created_contact, envelope
from tests.support.command import sagebridge

ACCOUNT, JANE, JOHN = "001Dn00000ACMEaIAG", "003Dn00000JANE1IAG", "003Dn00000JOHN2IAG"


def validate(contracts: Path, feed: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return sagebridge(contracts, "validate", *args, str(feed))


def test_explain_shows_each_mapped_record_and_the_missing_look_up(tmp_path: Path) -> None:
    contracts = contracts_with_xref(
        tmp_path,
        accounts=[(ACCOUNT, "01", "ACME")],
        contacts=[(JANE, "JSMITH", "01", "ACME"), (JOHN, "JDOE", "01", "ACME")],
    )
    feed = tmp_path / "feed.jsonl"
    events = [
        envelope("sf-1", created_contact(JANE, ACCOUNT)),
        envelope("sf-2", change_event("UPDATE", [JANE, JOHN], changed=["Phone"], Phone="555")),
        envelope("sf-3", created_contact(JANE, "001Dn00000NOPEaIAG")),
        envelope("sf-4", change_event("DELETE", [JANE])),
    ]
    feed.write_text("\n".join(json.dumps(e) for e in events) + "\n", encoding="utf-8")

    done = validate(contracts, feed, "--explain")
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith('line 1 (sf-1): /customerContacts <- {"ARDivisionNo":"01",')
    assert '"ContactName":"Jane Smith"' in lines[0]
    # The UPDATE shows the image it was merged onto: JANE's from line 1, none for JOHN.
    assert lines[1].startswith(f"line 2 (sf-2): image of salesforce_contact {JANE} at [")
    assert '"Name":{"FirstName":"Jane","LastName":"Smith","Salutation":"Ms."}' in lines[1]
    assert lines[2] == f"line 2 (sf-2): image of salesforce_contact {JOHN}: none"
    assert lines[3] == (
        f"line 2 (sf-2/{JANE}): /customerContacts <- "
        '{"ARDivisionNo":"01","CustomerNo":"ACME","ContactCode":"JSMITH","TelephoneNo1":"555"}'
    )
    assert lines[4].startswith(f"line 2 (sf-2/{JOHN}): /customerContacts <- ")
    assert lines[5] == (
        "line 3 (sf-3): ARDivisionNo: AccountId '001Dn00000NOPEaIAG' is not in look-up "
        "table salesforce_accounts [unmapped]"
    )
    assert lines[7].startswith("line 4 (sf-4): change type DELETE: not sent")
    assert lines[-1] == "4 events, 2 invalid"

    quiet = validate(contracts, feed)
    assert not any("<-" in line for line in quiet.stdout.splitlines())


def test_a_broken_mapping_stops_validate_with_one_line(tmp_path: Path) -> None:
    contracts = contracts_with_xref(tmp_path, accounts=[], contacts=[])
    mapping = contracts / "mappings" / "salesforce_contact.yaml"
    mapping.write_text(
        mapping.read_text("utf-8").replace("  City: {path", "  Town: {path"), "utf-8"
    )
    feed = tmp_path / "feed.jsonl"
    feed.write_text("\n", encoding="utf-8")
    done = validate(contracts, feed)
    assert done.returncode != 0
    [line] = done.stderr.strip().splitlines()
    assert "mappings/salesforce_contact.yaml: Town is not an element of AR Customer Contact" in line
