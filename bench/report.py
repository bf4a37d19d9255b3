"""Printing the table, judging the goals of issues 6, 3 and 12, writing RESULTS.md and the chart."""

from __future__ import annotations

import itertools
import math
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.cases import CallFloor, CaseResult, Plan
from bench.lockbench import LockFigures

COLUMNS = (
    ("case", 5),
    ("events", 7),
    ("seconds", 8),
    ("events/s", 9),
    ("calls", 6),
    ("p50 ms", 8),
    ("p99 ms", 8),
    ("RSS MB", 7),
    ("CPU cores svc/sbx/brk/bench", 28),
)


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def cores(result: CaseResult) -> str:
    """CPU seconds per component over the case's wall time: how many cores each kept busy."""
    wall = result.seconds
    if not wall or math.isnan(wall):
        return "n/a"
    parts = [result.cpu_s.get(name) for name in ("service", "sandbox", "broker", "bench")]
    return "/".join("-" if p is None else f"{p / wall:.2f}" for p in parts)


def cells(result: CaseResult) -> list[str]:
    return [
        result.key,
        fmt(result.received),
        fmt(result.seconds, 2),
        fmt(result.events_per_s),
        fmt(result.calls),
        fmt(result.p50_ms, 1),
        fmt(result.p99_ms, 1),
        fmt(result.peak_rss_mb, 1),
        cores(result),
    ]


def header() -> str:
    return "  ".join(name.rjust(width) for name, width in COLUMNS)


def line(result: CaseResult) -> str:
    row = "  ".join(
        cell.rjust(width) for cell, (_, width) in zip(cells(result), COLUMNS, strict=True)
    )
    notes = [result.title]
    if result.failure:
        notes.append(f"FAILED: {result.failure.splitlines()[0]}")
    if result.errors:
        notes.append(f"{result.errors} ERROR replies")
    if result.reader_holes:
        notes.append(f"reply reader re-read {result.reader_holes} hole(s) Tansu skipped")
    if result.rss_after_mb:
        notes.append("peak RSS MB ready/after each burst " + rss_steps(result.rss_after_mb))
    return f"{row}  {'; '.join(notes)}"


def rss_steps(values: Sequence[float]) -> str:
    return " -> ".join(fmt(v, 1) for v in values)


def last_burst_growth(result: CaseResult) -> float:
    """Growth of the peak RSS over the last burst, relative to the one before (0.05 = 5 %)."""
    after = result.rss_after_mb
    return after[-1] / after[-2] - 1 if len(after) >= 3 and after[-2] else float("nan")


def floor_line(floor: CallFloor) -> str:
    return (
        f"   d0  bare sequential POSTs to the sandbox ({floor.latency_ms} ms latency, "
        "the service's connector client, no Kafka/Redis): "
        f"p50 {floor.p50_ms:.2f} ms, p99 {floor.p99_ms:.2f} ms, mean "
        f"{floor.mean_ms:.2f} ms -> at most {floor.per_s:,.0f} calls/s per tenant"
    )


def lock_lines(figures: LockFigures) -> list[str]:
    return [
        f"    f  lock overhead (acquire+release, uncontended): median {figures.overhead_p50_ms:.3f}"
        f" ms, p99 {figures.overhead_p99_ms:.3f} ms ({figures.overhead_samples} samples)",
        f"    f  lock hand-off ({figures.contenders} processes, hold {figures.hold_ms:g} ms): "
        f"median {figures.handoff_p50_ms:.3f} ms, p99 {figures.handoff_p99_ms:.3f} ms, "
        f"max {figures.handoff_max_ms:.3f} ms ({figures.handoff_samples} samples)",
    ]


# -- goals --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    issue: int
    what: str
    target: str
    measured: str
    met: bool | None


@dataclass(frozen=True)
class Rounds:
    """(a), (b) and (c) run side by side several times: each round's ratios come from cases
    run minutes apart on the same machine, and the medians are what the goals judge — one
    round alone swings by a third on a shared 2-core machine."""

    runs: Sequence[dict[str, CaseResult]]

    def ratios(self, top: str, bottom: str) -> list[float]:
        return [
            run[top].events_per_s / run[bottom].events_per_s
            for run in self.runs
            if top in run and bottom in run
        ]

    def median_ratio(self, top: str, bottom: str) -> float:
        found = sorted(self.ratios(top, bottom))
        return statistics.median(found) if found else float("nan")

    def median_round(self) -> dict[str, CaseResult]:
        """The round whose b/a is the median (the first round without (a) and (b))."""
        ranked = sorted(
            (run for run in self.runs if "a" in run and "b" in run),
            key=lambda run: run["b"].events_per_s / run["a"].events_per_s,
        )
        return ranked[(len(ranked) - 1) // 2] if ranked else self.runs[0]


MAX_LAST_BURST_GROWTH = 0.05
"""Issue 12: memory plateaus under sustained load; "within a few percent" from burst 2 to 3."""


def _ok(value: float, good: bool) -> bool | None:
    return None if math.isnan(value) else good


def goals(
    results: dict[str, CaseResult], locks: LockFigures | None, plan: Plan, rounds: Rounds
) -> list[Goal]:
    nan = float("nan")
    found: list[Goal] = []
    b, e = results.get("b"), results.get("e")
    b_rates = sorted(run["b"].events_per_s for run in rounds.runs if "b" in run)
    b_rate = statistics.median(b_rates) if b_rates else nan
    of = f" (median of {len(rounds.runs)} rounds)" if len(rounds.runs) > 1 else ""
    found.append(
        Goal(
            6,
            "(b) throughput",
            ">= 10,000 events/s",
            fmt(b_rate) + of,
            _ok(b_rate, b_rate >= 10_000),
        )
    )
    ba = rounds.median_ratio("b", "a")
    found.append(
        Goal(
            6,
            "(b) vs ceiling (a)",
            ">= 50 % of (a)",
            f"{fmt(ba * 100)} %" + of,
            _ok(ba, ba >= 0.5),
        )
    )
    bc = rounds.median_ratio("b", "c")
    found.append(Goal(6, "(b) / naive (c)", ">= 10x", f"{fmt(bc, 1)}x" + of, _ok(bc, bc >= 10)))
    if b:
        limit = b.events / 90
        found.append(
            Goal(
                6,
                "(b) connector calls",
                f"<= events / 90 = {limit:,.0f}",
                f"{b.calls:,} ({b.events / max(1, b.calls):,.1f} events/call)",
                b.calls <= limit,
            )
        )
    else:
        found.append(Goal(6, "(b) connector calls", "<= events / 90", "n/a", None))
    target = plan.batch_wait_ms + 100
    e_p99 = e.p99_ms if e else nan
    found.append(
        Goal(
            6,
            "(e) p99 latency at a steady rate",
            f"<= BATCH_WAIT_MS + 100 = {target} ms",
            f"{fmt(e_p99, 1)} ms (p50 {fmt(e.p50_ms if e else nan, 1)} ms)",
            _ok(e_p99, e_p99 <= target),
        )
    )
    for key in ("d1", "d3", "d3t2"):
        d = results.get(key)
        if d is None or not d.ideal_per_s:
            continue
        share = d.events_per_s / d.ideal_per_s
        for issue in (6, 3):
            found.append(
                Goal(
                    issue,
                    f"({key}) serial throughput, {d.replicas} replica(s)",
                    f">= 90 % of {d.ideal_per_s:,.0f}/s = {0.9 * d.ideal_per_s:,.0f}/s",
                    f"{fmt(d.events_per_s)}/s = {fmt(share * 100)} %",
                    _ok(share, share >= 0.9),
                )
            )
    service_rss = [r.peak_rss_mb for k, r in results.items() if k != "a"]
    rss = max(service_rss) if service_rss else nan
    found.append(
        Goal(
            6,
            "service peak RSS (max over b-e and memory)",
            "<= 200 MB",
            f"{fmt(rss, 1)} MB",
            _ok(rss, rss <= 200),
        )
    )
    memory = results.get("memory")
    if memory is not None:
        growth = last_burst_growth(memory)
        found.append(
            Goal(
                12,
                "(memory) peak RSS growth over the last burst",
                f"<= {MAX_LAST_BURST_GROWTH:.0%} of the peak before it",
                f"{fmt(growth * 100, 1)} % ({rss_steps(memory.rss_after_mb)} MB)",
                _ok(growth, growth <= MAX_LAST_BURST_GROWTH),
            )
        )
    if locks is not None:
        found.append(
            Goal(
                3,
                "(f) lock overhead per call, median",
                "<= 1 ms",
                f"{locks.overhead_p50_ms:.3f} ms (p99 {locks.overhead_p99_ms:.3f} ms)",
                _ok(locks.overhead_p50_ms, locks.overhead_p50_ms <= 1),
            )
        )
        found.append(
            Goal(
                3,
                "(f) lock hand-off, p99",
                "<= 10 ms",
                f"{locks.handoff_p99_ms:.3f} ms (median {locks.handoff_p50_ms:.3f} ms)",
                _ok(locks.handoff_p99_ms, locks.handoff_p99_ms <= 10),
            )
        )
    return found


def verdict(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[met]


# -- machine --------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = "unknown"
    memory = "unknown"
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                model = text.split(":", 1)[1].strip()
                break
        for text in Path("/proc/meminfo").read_text().splitlines():
            if text.startswith("MemTotal:"):
                memory = f"{int(text.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "nproc": str(os.cpu_count()),
        "CPU": model,
        "RAM": memory,
        "Python": sys.version.split()[0],
        "OS": f"{platform.system()} {platform.release()}",
        "load average at start": load,
    }


# -- RESULTS.md ----------------------------------------------------------------------------


def rounds_lines(rounds: Rounds) -> list[str]:
    """The side-by-side rounds of (a), (b) and (c) with their ratios, and the medians."""
    out = [
        "| round | a events/s | b events/s | c events/s | b/a | b/c |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    nan = float("nan")
    for number, run in enumerate(rounds.runs, 1):
        rate = {k: run[k].events_per_s if k in run else nan for k in "abc"}
        out.append(
            f"| {number} | {fmt(rate['a'])} | {fmt(rate['b'])} | {fmt(rate['c'])} "
            f"| {fmt(rate['b'] / rate['a'], 2)} | {fmt(rate['b'] / rate['c'], 1)} |"
        )
    out += [
        "",
        f"- b/a = {fmt(rounds.median_ratio('b', 'a'), 2)} (median of the rounds' ratios)",
        f"- b/c = {fmt(rounds.median_ratio('b', 'c'), 1)} (median of the rounds' ratios)",
    ]
    return out


GOALS_HEADING = "Goals (issues 6, 3 and 12)"


def memory_lines(result: CaseResult) -> list[str]:
    """The memory case's peak RSS before the first burst and after each one."""
    bursts = len(result.rss_after_mb) - 1
    out = [
        "## Memory under repeated bursts (memory)",
        "",
        f"One `sagebridge run` takes {bursts} equal bursts of contacts "
        f"({result.events // max(1, bursts):,} each, every one answered before the next is "
        "sent; the same contacts under new event ids). Peak RSS (`VmHWM`) of the service:",
        "",
        "| after | peak RSS MB | growth over the step |",
        "|---|---:|---:|",
    ]
    steps = result.rss_after_mb
    out.append(f"| ready | {fmt(steps[0], 1)} | - |")
    for number, (before, value) in enumerate(itertools.pairwise(steps), 1):
        growth = value / before - 1 if before else float("nan")
        out.append(f"| burst {number} | {fmt(value, 1)} | {fmt(growth * 100, 1)} % |")
    out.append("")
    return out


def markdown(
    results: Sequence[CaseResult],
    locks: LockFigures | None,
    floor: CallFloor | None,
    plan: Plan,
    command: str,
    date: str,
    host: dict[str, str],
    chart: str,
    rounds: Rounds,
) -> str:
    by_key = {r.key: r for r in results}
    out = ["# sagebridge benchmark results", ""]
    if plan.quick:
        out += [
            "> `--quick` run (smoke-test size): the figures show the benchmark works, not speed.",
            "",
        ]
    out += [f"- Date: {date}", f"- Command: `{command}`"]
    out += ["- Machine: " + "; ".join(f"{k} {v}" for k, v in host.items())]
    out += [
        "- Parts: Tansu broker (in-memory), Redis, the sandbox (`python -m service sandbox`) and "
        "`python -m service run` replicas, each its own process; the benchmark process produces "
        "and collects replies. Input topic with 6 partitions, fresh topics per case.",
        "- Latency: from handing the event to the producer to the reply being fetched by the "
        "benchmark's consumer (matched by key). events/s: replies / (last reply - first send).",
        "",
        "## Cases",
        "",
        "| case | what | events | seconds | events/s | connector calls | p50 ms | p99 ms "
        "| peak RSS MB | CPU cores svc/sbx/brk/bench | status |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        status = (
            "ok"
            if r.complete
            else "FAILED: "
            + ((r.failure or "").splitlines()[0] if r.failure else f"{r.errors} ERROR replies")
        )
        row = cells(r)
        out.append(f"| {row[0]} | {r.title} | {' | '.join(row[1:])} | {status} |")
    out += [
        "",
        "CPU cores: CPU seconds each part used during the case divided by its wall time "
        "(service = all replicas; sbx = sandbox; brk = Tansu; bench = producer + reply collector).",
        "",
    ]
    out += [
        "## Where the time goes (from the service's /metrics)",
        "",
        "| case | ms per event (wall / events) | service CPU µs per event "
        "| mean connector call ms | mean lock wait ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        per_event = r.seconds / r.received * 1000 if r.received else float("nan")
        cpu = r.cpu_s.get("service", float("nan")) / r.received * 1e6 if r.received else math.nan
        out.append(
            f"| {r.key} | {fmt(per_event, 3)} | {fmt(cpu, 1)} | {fmt(r.call_ms, 2)} "
            f"| {fmt(r.lock_wait_ms, 2)} |"
        )
    out += [
        "",
        "Service CPU per event is the other way to read (b) against (a): the cost of one event "
        "in the service process (for (a), the ceiling loop), whatever the load generator and "
        "the broker do around it.",
        "",
    ]
    if floor is not None:
        out += [
            f"Floor for the serial lane (d0): {floor.calls} sequential POSTs straight to a sandbox "
            f"with {floor.latency_ms} ms latency (the service's connector client, no Kafka, "
            "no Redis) took p50 "
            f"{floor.p50_ms:.2f} ms, p99 {floor.p99_ms:.2f} ms, mean {floor.mean_ms:.2f} ms: at "
            f"most **{floor.per_s:,.0f} calls/s per tenant** for any one-at-a-time lane on this "
            f"machine, against the goal's ideal of {1000 / floor.latency_ms:,.0f}/s.",
            "",
        ]
        for key in ("d1", "d3", "d3t2"):
            d = by_key.get(key)
            if d is not None and d.ideal_per_s:
                tenants = round(d.ideal_per_s * floor.latency_ms / 1000)
                share = d.events_per_s / (floor.per_s * tenants)
                out.append(f"- {key}: {fmt(share * 100)} % of the floor ({tenants} tenant(s))")
        out.append("")
    if "c" in by_key and "b" in by_key and by_key["c"].events != by_key["b"].events:
        out += [
            f"(c) ran {by_key['c'].events:,} events instead of {by_key['b'].events:,} to keep the "
            "run short; the ratio compares per-event rates.",
            "",
        ]
    memory = by_key.get("memory")
    if memory is not None and memory.rss_after_mb:
        out += memory_lines(memory)
    if locks is not None:
        out += [
            "## Tenant lock (f)",
            "",
            "`service.state.locks.TenantLocks` against real Redis. Overhead: uncontended "
            "`acquire` + `release` round trip in one process. Hand-off: "
            f"{locks.contenders} processes with their own Redis clients contend for one lock, "
            f"each holding it {locks.hold_ms:g} ms; time from `release()` returning in one to "
            "`acquire()` returning in a process that was already waiting (pub/sub wake-up).",
            "",
            "| figure | median ms | p99 ms | max ms | samples |",
            "|---|---:|---:|---:|---:|",
            f"| f overhead | {locks.overhead_p50_ms:.3f} | {locks.overhead_p99_ms:.3f} | - | "
            f"{locks.overhead_samples} |",
            f"| f hand-off | {locks.handoff_p50_ms:.3f} | {locks.handoff_p99_ms:.3f} | "
            f"{locks.handoff_max_ms:.3f} | {locks.handoff_samples} |",
            "",
        ]
    out += ["## Ratios", ""]
    if len(rounds.runs) > 1:
        out += [
            f"(a), (b) and (c) ran {len(rounds.runs)} times, one after another; each round's "
            "ratios compare cases from that round, and the goals below judge the medians. "
            "The Cases table shows the round whose b/a is the median.",
            "",
        ]
    out += rounds_lines(rounds)
    out += ["", f"## {GOALS_HEADING}", "", "| issue | goal | target | measured | verdict |"]
    out += ["|---|---|---|---|---|"]
    for goal in goals(by_key, locks, plan, rounds):
        cols = (goal.issue, goal.what, goal.target, goal.measured, verdict(goal.met))
        out.append("| " + " | ".join(str(c) for c in cols) + " |")
    out += ["", f"![events/s per case]({chart})", ""]
    return "\n".join(out)


def chart(results: Sequence[CaseResult], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in results if not math.isnan(r.events_per_s)]
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    colours = [
        "#888888" if r.key == "a" else "#c0504d" if r.key == "c" else "#4f81bd" for r in shown
    ]
    bars = ax.bar([r.key for r in shown], [r.events_per_s for r in shown], color=colours)
    for bar, r in zip(bars, shown, strict=True):
        ax.annotate(
            f"{r.events_per_s:,.0f}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
        if r.ideal_per_s:
            ax.hlines(
                r.ideal_per_s,
                bar.get_x(),
                bar.get_x() + bar.get_width(),
                colors="black",
                linestyles="dashed",
                linewidth=1,
            )
    ax.set_yscale("log")
    ax.set_ylabel("events/s (log scale)")
    ax.set_title(title, fontsize=10)
    ax.text(
        0.99,
        0.97,
        "a ceiling, b batch lane, c naive, d serial (dashed: 1/latency), e steady rate, "
        "memory: three bursts",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=7,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
