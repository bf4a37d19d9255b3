"""``python -m bench.budget``: py-spy samples of the service counted under their stage.

Run as a command, as the smoke tests run the benchmark (``tests/bench`` is itself a package
named ``bench`` to pytest, so the benchmark's modules are not imported here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVICE = 'process 1:"python -m bench";process 2:"/x/python -m service run"'
SANDBOX = 'process 1:"python -m bench";process 3:"/x/python -m service sandbox"'
ENVELOPE = "envelope and format detection (own JSON, Connect JSON / wire format, CloudEvents)"


def budget_rows(tmp_path: Path, lines: list[str], *args: str) -> dict[str, str]:
    """``python -m bench.budget`` on a profile of ``lines``: its table's rows by stage."""
    profile = tmp_path / "profile.txt"
    profile.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "bench.budget", str(profile), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return {line.split(" | ")[0].strip("| "): line for line in run.stdout.splitlines()}


def test_each_sample_goes_to_the_stage_of_its_innermost_known_frame(tmp_path: Path) -> None:
    lines = [
        f"{SERVICE};run (asyncio/runners.py:1);Bridge.on_poll (service/bridge.py:2);"
        "Intake.admit (service/intake/admit.py:3);parse_event (service/intake/envelope.py:4) 3",
        f"{SERVICE};run (asyncio/runners.py:1);Bridge.on_poll (service/bridge.py:2) 1",
        f"{SERVICE};run (asyncio/runners.py:1) 2",
        f"{SERVICE};_find_and_load (<frozen importlib._bootstrap>:5) 7",  # start-up
        f"{SERVICE};Thread.run (threading.py:7);Condition.wait (threading.py:8) 5",  # idle
        f"{SANDBOX};handle (service/dev/sandbox/app.py:6) 9",  # another process
    ]
    rows = budget_rows(tmp_path, lines, "--cpu-us", "30")
    assert rows[ENVELOPE].endswith("| 50.0 % | 15.0 |")
    assert rows["offsets, flow control and tickets (bridge glue)"].endswith("| 16.7 % | 5.0 |")
    assert rows["event loop, garbage collector and the rest"].endswith("| 33.3 % | 10.0 |")
    assert rows["**total** (6 samples)"].endswith("| 100 % | 30.0 |")


def test_a_serial_profile_counts_each_redis_command_under_the_step_that_sent_it(
    tmp_path: Path,
) -> None:
    """``--lane serial``: the ledger begin runs inside the lock's lease guard, yet counts as
    the ledger's; a lease renewal counts as the lock's; the call as the Connector's."""
    worker = f"{SERVICE};CompanyWorker._run (service/lanes/serial/worker.py:1)"
    guarded = (
        f"{worker};Hold._guarded (service/lanes/serial/hold.py:2);"
        "TenantLocks.under_lease (service/state/locks.py:3)"
    )
    redis = "Redis.execute_command (redis/asyncio/client.py:9)"
    lines = [
        f"{guarded};SerialLedger.begin_guarded (service/state/ledger.py:4);{redis} 4",
        f"{guarded} 1",
        f"{worker};Turn.take (service/lanes/serial/turn.py:5);"
        "ConnectorClient.post (service/connector/client.py:6);send (httpx/_client.py:7) 3",
        f"{worker};Turn.take (service/lanes/serial/turn.py:5) 2",
    ]
    rows = budget_rows(tmp_path, lines, "--cpu-us", "500", "--lane", "serial")
    assert rows["ledger begin and results (Lua, Redis client)"].endswith("| 40.0 % | 200.0 |")
    assert rows["lock: acquire, lease renewal, release (Redis client)"].endswith(
        "| 10.0 % | 50.0 |"
    )
    assert rows["Connector call (httpx, aiohttp, the client)"].endswith("| 30.0 % | 150.0 |")
    assert rows["serial lane: worker, turn, hold"].endswith("| 20.0 % | 100.0 |")
