"""``sagebridge ...`` as an operator runs it: a subprocess with the given environment, awaited
without blocking the test's event loop (where the service may be running)."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from typing import Any

import orjson

from service.dev.processes import REPO

TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return orjson.loads(self.out)


async def sagebridge(env: dict[str, str], *args: str, ok: bool | None = True) -> Ran:
    """Run ``python -m service *args``; ``ok`` True/False asserts the exit code was 0/non-zero
    (with the output in the message), ``None`` checks nothing."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        *args,
        cwd=REPO,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
    ran = Ran(process.returncode or 0, out.decode(), err.decode())
    if ok is True:
        assert ran.code == 0, f"sagebridge {' '.join(args)}: exit {ran.code}\n{ran.out}{ran.err}"
    elif ok is False:
        assert ran.code != 0, f"sagebridge {' '.join(args)} succeeded:\n{ran.out}{ran.err}"
    return ran
