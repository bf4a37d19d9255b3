"""``python -m bench.budget``: the per-event budget of the service from a py-spy profile.

A profile of the ``batch`` case (``py-spy record --subprocesses -f raw`` around
``python -m bench --cases batch``) is a list of sampled stacks. Each sample of the
``sagebridge run`` process is counted under the stage of the event's path its innermost
recognised frame belongs to (:data:`STAGES`, first match wins), start-up imports left out.
With the service CPU per event the benchmark measured in the same run, each stage's share
becomes microseconds per event: the budget table in ``bench/RESULTS.md``. ``--lane serial``
counts a profile of ``companies-100-serial`` under the serial lane's steps instead
(:data:`SERIAL_STAGES`): microseconds per invoice.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("crash guard", ("service/kafka/crash_guard.py", "service/intake/crash_loop.py")),
    ("schema prefetch", ("service/registry/",)),
    (
        "envelope and format detection (own JSON, Connect JSON / wire format, CloudEvents)",
        ("service/intake/envelope.py", "service/intake/wire.py", "service/intake/cloudevents.py"),
    ),
    ("contract check and identity", ("service/intake/contracts.py",)),
    ("mapping", ("service/intake/mappings.py", "service/intake/mapping_sources.py")),
    ("record images step", ("service/intake/image", "service/intake/images.py")),
    (
        "route, tenant, reply_to rules",
        (
            "service/intake/routes.py",
            "service/tenants.py",
            "service/intake/topics.py",
            "Intake.admit",
        ),
    ),
    ("ledger (fingerprint, Lua scripts, Redis client)", ("service/state/", "redis/")),
    (
        "batch lane and Connector call (httpx, aiohttp)",
        ("service/lanes/", "service/connector/", "httpx", "aiohttp", "service/app.py"),
    ),
    (
        "reply encode (bodies, dead letters, outcome lines, metrics)",
        (
            "service/answers/outcomes.py",
            "service/ops/logs.py",
            "service/ops/metrics.py",
            "prometheus_client",
            "service/redaction.py",
            "_answer_of",
            "OutcomePublisher.publish",
        ),
    ),
    ("produce (batching sender, aiokafka producer)", ("service/answers/", "aiokafka/producer")),
    ("commit", ("service/offsets/committer.py", "Committer")),
    (
        "offsets, flow control and tickets (bridge glue)",
        ("service/offsets/", "service/bridge.py"),
    ),
    ("poll (aiokafka fetcher, FastStream)", ("aiokafka/", "faststream/", "fast_depends/")),
    ("periodic full collection", ("service/ops/gc.py",)),
)
"""(stage, substrings of a frame that put a sample there). A sample goes to the stage of its
innermost frame that matches any stage; frames are tried innermost first, stages in order."""

SERIAL_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("crash guard", ("service/kafka/crash_guard.py", "service/intake/crash_loop.py")),
    ("intake: envelope, route, tenant", ("service/intake/", "service/tenants.py")),
    # Redis's own frames match nothing: a command counts under the step that sent it.
    ("ledger begin and results (Lua, Redis client)", ("service/state/ledger",)),
    (
        "lock: acquire, lease renewal, release (Redis client)",
        ("service/state/lock", "service/lanes/serial/gate.py"),
    ),
    ("Connector call (httpx, aiohttp, the client)", ("service/connector/", "httpx", "aiohttp")),
    ("traces", ("service/ops/traces.py", "opentelemetry")),
    ("serial lane: worker, turn, hold", ("service/lanes/",)),
    (
        "answers: outcomes, outcome lines, metrics, publish",
        (
            "service/answers/",
            "service/answering.py",
            "service/ops/logs.py",
            "service/ops/metrics.py",
            "prometheus_client",
            "service/redaction.py",
        ),
    ),
    ("produce (aiokafka producer)", ("aiokafka/producer",)),
    ("offsets and commit (bridge glue)", ("service/offsets/", "service/bridge.py")),
    ("poll (aiokafka fetcher)", ("aiokafka/",)),
    ("periodic full collection", ("service/ops/gc.py",)),
)
"""The same for the serial lane (``--lane serial``, a profile of ``companies-100-serial``):
its per-invoice steps, with each Redis command under the step that sent it."""

LANES = {"batch": STAGES, "serial": SERIAL_STAGES}

OTHER = "event loop, garbage collector and the rest"
IDLE = ("Condition.wait (threading.py", "Event.wait (threading.py")


Stages = Sequence[tuple[str, tuple[str, ...]]]


@dataclass(frozen=True)
class Budget:
    samples: int
    by_stage: dict[str, int]
    stages: Stages = STAGES

    def rows(self, cpu_us_per_event: float) -> list[tuple[str, float, float]]:
        """(stage, share, µs per event), in path order, the rest last."""
        names = [name for name, _ in self.stages] + [OTHER]
        return [
            (
                name,
                self.by_stage.get(name, 0) / self.samples,
                self.by_stage.get(name, 0) / self.samples * cpu_us_per_event,
            )
            for name in names
            if self.by_stage.get(name, 0)
        ]


def stage_of(frames: Sequence[str], stages: Stages = STAGES) -> str:
    for frame in reversed(frames):
        for name, marks in stages:
            if any(mark in frame for mark in marks):
                return name
    return OTHER


def budget(
    lines: Iterable[str], process: str = "-m service run", stages: Stages = STAGES
) -> Budget:
    """Samples of ``process`` (a substring of its command line) by stage."""
    counted: Counter[str] = Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        frames = stack.split(";")
        owner = next(
            (i for i, f in enumerate(frames) if f.startswith("process ") and process in f), None
        )
        if owner is None or not count.isdigit():
            continue
        inner = frames[owner + 1 :]
        if any("importlib._bootstrap" in frame for frame in inner):
            continue  # start-up: importing modules
        if inner and inner[-1].startswith(IDLE):
            continue  # a worker thread waiting for work: py-spy counts it, it costs nothing
        counted[stage_of(inner, stages)] += int(count)
    return Budget(sum(counted.values()), dict(counted), stages)


def markdown(found: Budget, cpu_us_per_event: float) -> list[str]:
    out = [
        "| stage of the event's path | share of samples | µs per event |",
        "|---|---:|---:|",
    ]
    for name, share, micros in found.rows(cpu_us_per_event):
        out.append(f"| {name} | {share * 100:.1f} % | {micros:.1f} |")
    out.append(f"| **total** ({found.samples:,} samples) | 100 % | {cpu_us_per_event:.1f} |")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.budget", description=__doc__)
    parser.add_argument("profile", type=Path, help="py-spy raw output (-f raw, --subprocesses)")
    parser.add_argument(
        "--cpu-us", type=float, required=True, help="service CPU µs per event in the same run"
    )
    parser.add_argument(
        "--lane",
        choices=sorted(LANES),
        default="batch",
        help="whose stages: the batch case's (default) or the serial lane's (companies-100-serial)",
    )
    args = parser.parse_args(argv)
    with args.profile.open(encoding="utf-8") as lines:
        found = budget(lines, stages=LANES[args.lane])
    if not found.samples:
        print("bench.budget: no samples of the service process in the profile")
        return 1
    print("\n".join(markdown(found, args.cpu_us)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
