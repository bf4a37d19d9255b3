"""``sagebridge xref load TABLE FILE``: install an operator's cross-reference table, checked.

The table (``contracts/xref/TABLE.csv``) is read at start-up, and a table the mappings cannot
use refuses start-up. Copying a fresh export over it by hand would find that out only when the
service restarts. This command loads the new file into a copy of the contracts first, exactly as
start-up would (every mapping and route against it), and installs it only if that works, in one
rename, so a running service's next start never sees half a file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TextIO

from service.intake.routes import load_route_table
from service.intake.xref import read_table


def load_table(contracts: Path, table: str, source: Path, out: TextIO) -> int:
    """Check ``source`` as ``xref/<table>.csv`` and install it; raises
    :class:`~service.errors.ContractFileError` (one line) if the contracts would not load."""
    target = contracts / "xref" / f"{table}.csv"
    rows = len(read_table(source, table).rows)  # its own faults, named by its own path
    text = source.read_bytes()
    with tempfile.TemporaryDirectory(prefix="sagebridge-xref-") as scratch:
        trial = Path(scratch) / "contracts"
        shutil.copytree(contracts, trial)
        (trial / "xref").mkdir(exist_ok=True)
        (trial / "xref" / f"{table}.csv").write_bytes(text)
        load_route_table(trial)  # every mapping against the new table, as start-up does
    target.parent.mkdir(exist_ok=True)
    staged = target.with_name(f".{target.name}.new")
    staged.write_bytes(text)
    os.replace(staged, target)
    out.write(f"xref {table}: {rows} rows installed in {target}; restart the service to use them\n")
    return 0
