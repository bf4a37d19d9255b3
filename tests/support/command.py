"""``sagebridge`` as an operator runs it: a subprocess with only the settings a test gives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def sagebridge(contracts: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``sagebridge ARGS`` with ``SAGEBRIDGE_CONTRACTS_DIR=contracts`` and no other
    ``SAGEBRIDGE_*`` setting from the outer environment (nor a ``.env``: it runs beside
    ``contracts``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGEBRIDGE_")}
    env["SAGEBRIDGE_CONTRACTS_DIR"] = str(contracts)
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=contracts.parent,
        timeout=60,
    )
