"""``sagebridge demo`` as a user runs it: a real subprocess that must answer every event, print a
consistent summary, exit 0 and leave no broker or Redis behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
EVENTS = 300


def _count(label: str, summary: str) -> int:
    match = re.search(rf"^\s*{label}\s+(\d+)\b", summary, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{summary}"
    return int(match.group(1))


def _survivors(marker: str) -> list[str]:
    """Live processes that inherited ``marker`` from the demo's environment (its children).

    After the demo exits its orphans are re-parented, so parentage cannot find them; the
    environment they inherited can.
    """
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() not in (proc / "environ").read_bytes():
                continue
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if state != "Z":
            found.append(f"{proc.name}: {cmdline}")
    return found


def test_demo_answers_every_event_and_cleans_up() -> None:
    marker = f"SAGEBRIDGE_DEMO_TEST_MARKER=demo-{uuid.uuid4().hex}"
    name, value = marker.split("=", 1)
    env = {**os.environ, name: value}
    result = subprocess.run(
        [sys.executable, "-m", "service", "demo", "--events", str(EVENTS)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    output = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, output
    summary = result.stdout
    assert _count("events sent", summary) == EVENTS
    success, errors = _count("SUCCESS", summary), _count("ERROR", summary)
    assert success + errors == EVENTS, output
    assert errors > 0, "the sample feed holds invalid records"
    assert _count("dead letters", summary) == errors, output
    assert "example ERROR replies:" in summary
    # Salesforce change events mapped by the shipped mapping: what landed, and why not.
    assert "Salesforce change events (contracts/mappings/salesforce_contact.yaml):" in summary
    for event_id in ("sf-001", "sf-002", "sf-003", "sf-004", "sf-005", "sf-009"):
        assert re.search(rf"^  {event_id} .*SUCCESS$", summary, re.MULTILINE), output
    assert re.search(r"^  sf-006 .*ERROR validation: ARDivisionNo: AccountId", summary, re.M)
    assert re.search(r"^  sf-007 .*ERROR route: change type DELETE: not sent", summary, re.M)
    # The last-name change: sent with the ContactName rebuilt from the record's image.
    assert re.search(r"^  sf-008 .*SUCCESS$", summary, re.MULTILINE), output
    assert '"ContactCode":"SFJSMITH","ContactName":"Jane Birch"}' in summary, output
    # Not a terminal here: progress is a few plain lines on stderr, no carriage returns.
    assert "\r" not in result.stderr
    assert "event delivered" not in result.stderr, "the demo shows a summary, not a log flood"
    assert f"replies: {EVENTS}/{EVENTS}" in result.stderr
    assert _survivors(marker) == []
