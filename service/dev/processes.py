"""Programs the demo, the tests and the benchmark start as OS processes, and how they stop.

Every process writes its output to a log file (the place to look when it fails to start),
readiness is a real connection or answer with a deadline, never a fixed sleep, and stopping is
SIGTERM first (``sagebridge run`` drains on it) and SIGKILL only when that takes too long.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from service.errors import DevStackError

REPO = Path(__file__).resolve().parents[2]
"""Where ``python -m service`` is run from, as a developer runs it."""
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int,
    deadline_s: float,
    process: subprocess.Popen[bytes] | None = None,
    what: str = "service",
) -> None:
    """Until ``127.0.0.1:port`` accepts a connection; :class:`DevStackError` if ``process``
    exits first or the deadline passes."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if process is not None and process.poll() is not None:
            raise DevStackError(f"{what} exited with code {process.returncode} while starting")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise DevStackError(
        f"{what} did not accept connections on port {port} within {deadline_s:.0f}s"
    )


@dataclass
class Process:
    """A started program, its log file, and the port it serves on (0 when it serves none)."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def terminate(self, timeout_s: float = 20.0) -> int:
        """SIGTERM, then wait up to ``timeout_s`` for the exit code (``TimeoutExpired`` after)."""
        self.popen.send_signal(signal.SIGTERM)
        self.popen.send_signal(signal.SIGCONT)  # a frozen process handles its SIGTERM too
        return self.popen.wait(timeout_s)

    def kill(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait()

    def freeze(self) -> None:
        """SIGSTOP: the process runs no further until :meth:`thaw`, so a test can read a state
        it is in without racing it (its open requests still end at their server)."""
        self.popen.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: a frozen process runs on."""
        self.popen.send_signal(signal.SIGCONT)

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it takes longer than ``timeout_s``; nothing if it is gone."""
        if self.alive():
            try:
                self.terminate(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()


def launch(
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout and stderr appended to ``log_path``; ``env`` is added to this
    process's environment."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env={**os.environ, **env} if env is not None else None,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def spawn(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    port: int = 0,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Process:
    """:func:`launch` ``argv`` as the :class:`Process` ``name``."""
    return Process(name, launch(argv, log_path, env=env, cwd=cwd), log_path, port)


def spawn_listening(
    name: str,
    argv: Sequence[str],
    port: int,
    log_path: Path,
    *,
    deadline_s: float = 20.0,
    cwd: Path | None = None,
) -> Process:
    """:func:`spawn`, returning once the program accepts connections on ``port``; stopped again
    if it does not within ``deadline_s``."""
    process = spawn(name, argv, log_path, port=port, cwd=cwd)
    try:
        wait_for_port(port, deadline_s, process.popen, name)
    except DevStackError:
        process.stop()
        raise
    return process


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def peak_rss_bytes(pid: int) -> int:
    """The process's high-water mark of resident memory (``VmHWM``); 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
