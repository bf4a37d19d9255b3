"""The sandbox as its own OS process (``python -m service sandbox``), as the benchmark runs it:
its CPU is then counted apart from the service's and the load generator's."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from service.dev.processes import REPO, Process, free_port, spawn_listening

START_DEADLINE_S = 30.0


@dataclass
class SandboxProcess(Process):
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_sandbox_process(
    log_dir: Path, tokens: Sequence[str], latency_ms: int = 0
) -> SandboxProcess:
    """A sandbox on a free port accepting ``tokens``, once it accepts connections."""
    port = free_port()
    argv = [sys.executable, "-m", "service", "sandbox", "--port", str(port)]
    for token in tokens:
        argv += ["--token", token]
    argv += ["--latency-ms", str(latency_ms)]
    log_path = log_dir / f"sandbox-{port}.log"
    started = spawn_listening(
        "sandbox", argv, port, log_path, deadline_s=START_DEADLINE_S, cwd=REPO
    )
    return SandboxProcess(started.name, started.popen, started.log_path, started.port)
