"""``sagebridge xref load``, as the operator runs it: a table is installed only if the
contracts load with it, so a bad export can never stop the next start-up."""

from __future__ import annotations

import subprocess
from pathlib import Path

from service.dev.salesforce import contracts_with_xref
from tests.support.command import sagebridge

ACCOUNT = "001Dn00000ACMEaIAG"


def xref_load(contracts: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return sagebridge(contracts, "xref", "load", *args)


def test_a_good_table_is_installed(tmp_path: Path) -> None:
    contracts = contracts_with_xref(tmp_path, accounts=[], contacts=[])
    export = tmp_path / "accounts.csv"
    export.write_text(f"AccountId,ARDivisionNo,CustomerNo\n{ACCOUNT},01,ACME\n", "utf-8")
    done = xref_load(contracts, "salesforce_accounts", str(export))
    assert done.returncode == 0, done.stderr
    installed = contracts / "xref" / "salesforce_accounts.csv"
    assert done.stdout.startswith(f"xref salesforce_accounts: 1 rows installed in {installed}")
    assert installed.read_text("utf-8") == export.read_text("utf-8")


def test_a_table_the_mapping_cannot_use_is_refused_and_the_old_one_kept(tmp_path: Path) -> None:
    contracts = contracts_with_xref(tmp_path, accounts=[(ACCOUNT, "01", "ACME")], contacts=[])
    installed = contracts / "xref" / "salesforce_accounts.csv"
    before = installed.read_text("utf-8")
    too_long = tmp_path / "too_long.csv"
    too_long.write_text(f"AccountId,ARDivisionNo,CustomerNo\n{ACCOUNT},01,{'C' * 21}\n", "utf-8")
    twice = tmp_path / "twice.csv"
    twice.write_text(
        f"AccountId,ARDivisionNo,CustomerNo\n{ACCOUNT},01,A\n{ACCOUNT},01,B\n", "utf-8"
    )
    no_column = tmp_path / "no_column.csv"
    no_column.write_text(f"AccountId,ARDivisionNo\n{ACCOUNT},01\n", "utf-8")

    for export, expected in (
        (too_long, "CustomerNo can be 21 characters, but AR Customer Contact allows 20"),
        (twice, f"{twice}: line 3: AccountId '{ACCOUNT}' listed twice"),
        (no_column, "xref/salesforce_accounts.csv has no column 'CustomerNo'"),
    ):
        done = xref_load(contracts, "salesforce_accounts", str(export))
        assert done.returncode == 2
        [line] = done.stderr.strip().splitlines()
        assert line.startswith("sagebridge: bad contracts") and expected in line, line
        assert installed.read_text("utf-8") == before
        assert sorted(p.name for p in installed.parent.iterdir()) == [
            "salesforce_accounts.csv",
            "salesforce_contacts.csv",
        ]
