"""A rolling upgrade: the previous release and this one, side by side on one group, one Redis
and one sandbox, under transactional load. They share the tenant locks, the calling marker, the
ledger and the message formats, so one call at a time per company must hold across them, and
nothing may be stored twice.

The previous release is the commit this one builds on (``PREVIOUS``), unpacked with
``git archive`` into a temporary directory and run from there as ``python -m service run``
(its own source first on ``PYTHONPATH``; the locked dependencies are the same)."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from collections import Counter
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path

import httpx
import pytest

from service.dev.events import produce
from service.dev.processes import REPO, free_port, launch
from service.dev.replicas import ServiceProcess
from service.dev.sandbox.client import stats as sandbox_stats
from service.dev.sandbox.client import stored_records
from service.dev.topics import Topics
from tests.support.kafka import Collector
from tests.system.test_serial_replicas import ENDPOINT, invoices

PREVIOUS = "ffb3ca2"
"""The release before the serial lane became a package and the state layer its own errors."""


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's tree (read-only use: no worktree, nothing written to the repo)."""
    target = tmp_path_factory.mktemp("previous-release")
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", PREVIOUS],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


@pytest.fixture
def previous_replica(
    previous_release: Path, replica_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[[], ServiceProcess]]:
    started: list[ServiceProcess] = []

    def start() -> ServiceProcess:
        port = free_port()
        env = {
            **replica_env,
            "PYTHONPATH": str(previous_release),
            "SAGEBRIDGE_HTTP_PORT": str(port),
        }
        log = tmp_path / f"previous-{len(started)}.log"
        argv = [sys.executable, "-m", "service", "run"]
        process = ServiceProcess(
            "previous", launch(argv, log, env=env, cwd=previous_release), log, port
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def serial_calls(process: ServiceProcess) -> float:
    """How many transactional calls this replica made (its own ``/metrics``)."""
    text = httpx.get(f"http://127.0.0.1:{process.port}/metrics", timeout=5).text
    counts = re.findall(
        r'^sagebridge_connector_latency_seconds_count\{[^}]*lane="serial"[^}]*\} (\S+)$', text, re.M
    )
    return sum(float(c) for c in counts)


async def test_the_previous_release_and_this_one_never_overlap_or_store_twice(
    previous_replica, replicas, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    old = previous_replica()
    new = replicas()
    await old.wait_ready()
    await new.wait_ready()
    await produce(kafka_bootstrap, topics.events, invoices(200))
    replies = await collector.wait_for(topics.replies, 200, timeout_s=180)
    assert Counter(r.json()["response"] for r in replies) == {"SUCCESS": 200}
    stats = await sandbox_stats(sandbox)
    assert stats["violations"] == 0
    assert stats["max_concurrent_transactional"] == 1
    stored = Counter(r["record"]["InvoiceNo"] for r in await stored_records(sandbox, ENDPOINT))
    assert len(stored) == 200 and set(stored.values()) == {1}, "every invoice stored once"
    assert serial_calls(old) > 0 and serial_calls(new) > 0, "both releases took part"
