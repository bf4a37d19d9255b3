"""Cross-reference tables: the operator's list of which Sage keys a CRM id stands for.

A Salesforce ``AccountId`` says nothing about Sage's ``ARDivisionNo`` and ``CustomerNo``; only
the people who run both systems know which customer an account is. They keep that knowledge as
one CSV file per table in ``contracts/xref/``: a header row, then one row per CRM id, the id in
the first column::

    AccountId,ARDivisionNo,CustomerNo
    001Dn00000ABCdeIAG,01,ABC

Read once at start-up like the contracts (a change means a restart, as for any contract), so a
look-up during intake is a dictionary access and intake stays free of I/O.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from service.errors import ContractFileError


@dataclass(frozen=True, slots=True)
class CrossReference:
    """One table: CRM id -> the row's other columns."""

    name: str
    id_column: str
    columns: tuple[str, ...]
    rows: Mapping[str, Mapping[str, str]]

    def get(self, crm_id: str, column: str) -> str | None:
        row = self.rows.get(crm_id)
        if row is None:
            return None
        value = row.get(column)
        return value if value else None


def load_cross_references(directory: Path) -> dict[str, CrossReference]:
    """Every ``*.csv`` in ``directory`` (none if it does not exist), named after its stem.

    Raises :class:`ContractFileError` for a file without a header, a row with the wrong number
    of cells, or an id listed twice: a table that says two things about one id is no answer.
    """
    tables: dict[str, CrossReference] = {}
    for path in sorted(directory.glob("*.csv")) if directory.is_dir() else ():
        tables[path.stem] = read_table(path)
    return tables


def read_table(path: Path, name: str | None = None) -> CrossReference:
    """One table from ``path``, named ``name`` (default: the file's stem)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            lines = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractFileError(f"cannot read cross-reference table {path}: {exc}") from None
    if not lines or len(lines[0]) < 2:
        raise ContractFileError(f"{path}: needs a header row: the CRM id column, then others")
    header = [name.strip() for name in lines[0]]
    rows: dict[str, dict[str, str]] = {}
    for number, cells in enumerate(lines[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            raise ContractFileError(
                f"{path}: line {number}: {len(cells)} cells, the header has {len(header)}"
            )
        crm_id = cells[0].strip()
        if crm_id in rows:
            raise ContractFileError(f"{path}: line {number}: {header[0]} {crm_id!r} listed twice")
        rows[crm_id] = {
            name: cell.strip() for name, cell in zip(header[1:], cells[1:], strict=True)
        }
    return CrossReference(name or path.stem, header[0], tuple(header[1:]), rows)
