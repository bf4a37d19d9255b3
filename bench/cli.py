"""``python -m bench``: run the cases, print a table as each finishes, write RESULTS.md + PNG."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import signal
import sys
import traceback
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from bench import report
from bench.cases import (
    BATCH,
    BYTES,
    CASES,
    CEILING,
    LATENCY,
    LATENCY_KEYS,
    LOCK,
    MEMORY,
    PER_RECORD,
    REPEATED,
    SERIAL,
    SERIAL_CASES,
    SIDE_BY_SIDE,
    STEADY,
    CallFloor,
    CaseResult,
    Plan,
    Setup,
    call_floor,
    in_every_round,
    run_case,
    setups,
    wants_serial,
)
from bench.companies import COMPANIES
from bench.companies import KEYS as COMPANY_KEYS
from bench.lockbench import LockFigures, measure_locks
from bench.seedbench import (
    QUICK_SEED_ROWS,
    SEED,
    SEED_ROWS,
    SeedFigures,
    measure_seed,
    seed_lines,
    seed_markdown,
)
from bench.stack import Stack

ALL_CASES = ",".join(
    (CEILING, BATCH, PER_RECORD, SERIAL, LATENCY, STEADY, LOCK, MEMORY, BYTES, COMPANIES, SEED)
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="sagebridge benchmark against a real broker (Tansu), Redis and the sandbox.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few hundred events per case (smoke test)"
    )
    parser.add_argument(
        "--cases",
        default=ALL_CASES,
        help=f"comma-separated subset of {ALL_CASES}; {SERIAL} runs "
        + ", ".join(SERIAL_CASES)
        + f", {LATENCY} runs "
        + ", ".join(LATENCY_KEYS)
        + f", {COMPANIES} runs "
        + ", ".join(COMPANY_KEYS)
        + ", each of which can be named alone",
    )
    parser.add_argument(
        "--events",
        type=int,
        default=None,
        help=f"events for {CEILING} and {BATCH}; {PER_RECORD} runs a tenth",
    )
    parser.add_argument(
        "--burst",
        type=int,
        default=None,
        help="contacts per burst in the memory case, which sends three bursts "
        "(default 200,000, or 1,000 with --quick)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"times {', '.join(SIDE_BY_SIDE)} run side by side, and {', '.join(REPEATED)} "
        "with them; the goals judge the median ratios and figures (default 3, or 1 with --quick)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="where RESULTS.md and results.png go (default: bench/)",
    )
    return parser


async def _run(
    stack: Stack,
    plan: Plan,
    cases: Collection[str],
    rounds: int,
    results: list[CaseResult],
    floors: list[CallFloor],
    runs: list[dict[str, CaseResult]],
    seeds: list[SeedFigures],
) -> LockFigures | None:
    """The side-by-side cases ``rounds`` times over into ``runs``; ``results`` gets the median
    round's and then every other case's result."""
    if wants_serial(cases):
        floor = await call_floor(stack, plan.serial_latency_ms, plan.floor_calls)
        floors.append(floor)
        print(report.floor_line(floor), flush=True)
    if LATENCY in cases or report.PER_CALL_CASE in cases:
        floor = await call_floor(stack, report.PER_CALL_LATENCY_MS, plan.floor_calls // 5)
        floors.append(floor)
        print(report.floor_line(floor), flush=True)
    together = in_every_round(cases)
    for number in range(rounds if together else 0):
        if rounds > 1:
            print(f"  round {number + 1} of {rounds}", flush=True)
        runs.append({s.key: await _measure(stack, s) for s in setups(plan, together)})
    if runs:
        results.extend(report.Rounds(runs).medians())
    for setup in setups(plan, [k for k in cases if k not in SIDE_BY_SIDE]):
        if setup.key not in together:
            results.append(await _measure(stack, setup))
    results.sort(key=lambda result: CASES.index(result.key))
    if SEED in cases:
        rows = QUICK_SEED_ROWS if plan.quick else SEED_ROWS
        seeds.append(await measure_seed(stack.redis_url, rows))
        for text in seed_lines(seeds[-1]):
            print(text, flush=True)
    if LOCK not in cases:
        return None
    figures = await measure_locks(stack.redis_url, plan.lock_iterations, plan.handoff_seconds)
    for text in report.lock_lines(figures):
        print(text, flush=True)
    return figures


async def _measure(stack: Stack, setup: Setup) -> CaseResult:
    try:
        result = await run_case(stack, setup)
    except Exception as exc:
        traceback.print_exc()
        result = CaseResult(setup.key, setup.title, len(setup.feed), failure=repr(exc))
    print(report.line(result), flush=True)
    return result


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cases = {c.strip() for c in args.cases.split(",") if c.strip()}
    unknown = cases - {*CASES, SEED}
    if unknown:
        print(f"bench: unknown case(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    plan = Plan.build(args.quick, args.events, args.burst)
    given = list(sys.argv[1:] if argv is None else argv)
    command = " ".join(["python -m bench", *(shlex.quote(a) for a in given)]).strip()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    host = report.machine()
    # Raise KeyboardInterrupt out of the event loop on SIGINT and SIGTERM (rather than asyncio's
    # cancel-the-main-task, which task code can swallow), so `with Stack()` stops every child.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)

    print(f"sagebridge benchmark, {date}, " + ", ".join(f"{k} {v}" for k, v in host.items()))
    print(report.header(), flush=True)
    rounds = args.rounds or (1 if args.quick else 3)
    results: list[CaseResult] = []
    floors: list[CallFloor] = []
    runs: list[dict[str, CaseResult]] = []
    seeds: list[SeedFigures] = []
    try:
        with Stack() as stack:
            locks = asyncio.run(_run(stack, plan, cases, rounds, results, floors, runs, seeds))
    except KeyboardInterrupt:
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # the interrupted main task
        print("bench: interrupted; every process it started has been stopped", file=sys.stderr)
        return 130

    args.out.mkdir(parents=True, exist_ok=True)
    chart_path = args.out / "results.png"
    if results:  # a run of only the lock or seed case has no events/s to chart
        report.chart(results, chart_path, f"sagebridge benchmark, {date} ({host['nproc']} cores)")
    floor = next((f for f in floors if f.latency_ms == plan.serial_latency_ms), None)
    floor_50 = next((f for f in floors if f.latency_ms == report.PER_CALL_LATENCY_MS), None)
    side_by_side = report.Rounds(runs)
    text = report.markdown(
        results, locks, floor, plan, command, date, host, chart_path.name, side_by_side, floor_50
    )
    for figures in seeds:
        text += "\n" + "\n".join(seed_markdown(figures))
    (args.out / "RESULTS.md").write_text(text, encoding="utf-8")
    print()
    for goal in report.goals({r.key: r for r in results}, locks, plan, side_by_side):
        print(
            f"  {goal.area}: {goal.what}: {goal.measured} (goal {goal.target}) "
            f"-> {report.verdict(goal.met).strip('*')}"
        )
    print(f"\nwrote {args.out / 'RESULTS.md'} and {chart_path}; process logs in {stack.log_dir}")
    every = results + [r for run in runs for r in run.values()]
    return 0 if all(r.complete for r in every) else 1
