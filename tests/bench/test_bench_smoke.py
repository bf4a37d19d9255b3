"""The benchmark runs end to end at smoke-test size and reports every figure (not its speed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PIPELINE_CASES = (
    "ceiling",
    "batch",
    "per-record",
    "serial-1r",
    "serial-3r",
    "serial-3r-2t",
    "steady",
    "memory",
)
LATENCY_CASES = (
    "serial-50ms-1r",
    "serial-50ms-array10-1r",
    "serial-50ms-array50-1r",
    "serial-200ms-1r",
    "serial-200ms-array10-1r",
    "serial-200ms-array50-1r",
    "serial-50ms-3r",
    "serial-50ms-array50-3r",
    "serial-200ms-1r-3t",
    "serial-200ms-array50-3r-3t",
)
GOALS = "Goals"
GOAL_AREAS = ("batch lane", "latency", "serial lane", "memory", "tenant lock")
PIPELINE_FIGURES = 9  # events, seconds, events/s, calls, p50, p99, RSS, CPU cores, status
NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?$")


def section(text: str, heading: str) -> str:
    """The body of the ``## heading`` section."""
    _, found, rest = text.partition(f"\n## {heading}\n")
    assert found, f"no section {heading!r}"
    return rest.split("\n## ", 1)[0]


def table_rows(text: str, first_cell: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            rows.append(cells)
    return rows


def quick_bench(out: Path, *args: str) -> tuple[str, str]:
    """``python -m bench --quick ARGS --out OUT``: its stdout and the RESULTS.md it wrote."""
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", *args, "--out", str(out)],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return run.stdout, (out / "RESULTS.md").read_text(encoding="utf-8")


def assert_cases_reported(stdout: str, results: str, keys: tuple[str, ...]) -> None:
    cases = section(results, "Cases")
    for case in keys:
        rows = table_rows(cases, case)
        assert len(rows) == 1, f"case {case} missing from RESULTS.md"
        _, _title, *figures = rows[0]
        assert len(figures) == PIPELINE_FIGURES, rows[0]
        *numbers, cores, status = figures
        assert all(NUMBER.match(n) for n in numbers), f"case {case}: {numbers}"
        assert re.fullmatch(r"[\d.]+/([\d.]+|-)/[\d.]+/[\d.]+", cores), f"case {case}: {cores}"
        assert status == "ok", f"case {case}: {status}"
        assert case in stdout  # printed as it finished


def test_quick_benchmark_at_realistic_latency_reports_every_case_and_its_goals(
    tmp_path: Path,
) -> None:
    stdout, results = quick_bench(tmp_path, "--cases", "latency")
    assert_cases_reported(stdout, results, LATENCY_CASES)
    goals_text = section(results, GOALS)
    goals = table_rows(goals_text, "serial lane")
    whats = [goal[1] for goal in goals]
    assert any(w.startswith("(serial-50ms-1r) one invoice per call at 50 ms") for w in whats)
    assert any(w.startswith("(serial-50ms-3r) one invoice per call at 50 ms") for w in whats)
    assert any(w.startswith("(serial-50ms-array50-1r) arrays of 50 against") for w in whats)
    assert all(g[-1] in ("met", "**missed**") for g in goals), goals
    per_call = section(results, "Per-call overhead of the serial lane (serial-50ms-1r)")
    rows = [line for line in per_call.splitlines() if line.startswith("| ")][1:]  # no header
    parts = [row.strip("| ").rsplit(" | ", 1) for row in rows]
    assert [p[0].split(":")[0].split(" (")[0] for p in parts[:2]] == [
        "bare call",
        "the service's call beyond the bare call",
    ], parts
    assert parts[-1][0].startswith("**overhead per call**"), parts
    assert all(NUMBER.match(p[1].strip("*~")) or p[1] == "~0" for p in parts), parts


def test_quick_benchmark_reports_every_figure(tmp_path: Path) -> None:
    stdout, results = quick_bench(
        tmp_path,
        "--rounds",
        "2",
        "--cases",
        "ceiling,batch,per-record,serial,steady,lock,memory,serial-50ms-1r",
    )
    assert_cases_reported(stdout, results, (*PIPELINE_CASES, "serial-50ms-1r"))

    for figure in ("lock overhead", "lock hand-off"):
        rows = table_rows(section(results, "Tenant lock (lock)"), figure)
        assert len(rows) == 1, f"{figure} missing from RESULTS.md"
        median, p99 = rows[0][1:3]
        assert NUMBER.match(median) and NUMBER.match(p99), rows[0]

    assert re.search(r"batch/ceiling = [\d.]+", results)
    assert re.search(r"batch/per-record = [\d.]+", results)
    ratios = section(results, "Ratios")
    for number in ("1", "2"):
        # Each round twice: its side-by-side cases' events/s and ratios, all numbers; then the
        # case with a throughput goal of its own, which runs in every round too.
        side_by_side, repeated = table_rows(ratios, number)
        assert all(NUMBER.match(cell) for cell in side_by_side[1:]), side_by_side
        assert re.fullmatch(r"[\d,]+ \(\d+ %\)", repeated[1]), repeated
    assert "median of 2 rounds" in section(results, GOALS)
    [one_at_a_time] = [
        g for g in table_rows(section(results, GOALS), "serial lane") if "(serial-50ms-1r)" in g[1]
    ]
    assert one_at_a_time[3].endswith("(median of 2 rounds)"), one_at_a_time
    assert re.search(r"Floor for the serial lane \(call-floor\).*p50 [\d.]+ ms", results)
    for heading in ("nproc", "CPU", "RAM", "Python", "Command: `python -m bench --quick"):
        assert heading in results
    goals_text = section(results, GOALS)
    goals = [row for area in GOAL_AREAS for row in table_rows(goals_text, area)]
    assert len(goals) >= 11 and all(g[-1] in ("met", "**missed**") for g in goals), goals
    assert not re.search(r"\bissues?\b", goals_text), "goals say what they are about"

    # The memory case: peak RSS once ready and after each of three bursts, and its goal.
    memory = section(results, "Memory under repeated bursts (memory)")
    steps = [table_rows(memory, step) for step in ("ready", "burst 1", "burst 2", "burst 3")]
    for (row,) in steps:
        assert NUMBER.match(row[1]) and float(row[1].replace(",", "")) > 0, row
    [growth] = [g for g in table_rows(goals_text, "memory") if "growth" in g[1]]
    assert growth[1] == "(memory) peak RSS growth over the last burst", growth


def test_quick_bytes_case_reports_rss_against_queued_bytes(tmp_path: Path) -> None:
    """The bytes case: journals queued behind a paused company in steps, the service's peak RSS
    after each, every journal answered once the company is resumed, and its goal."""
    _, results = quick_bench(tmp_path, "--cases", "bytes")
    queued = section(results, "Memory against queued bytes (bytes)")
    table = [line for line in queued.splitlines() if line.startswith("| ")][1:]  # no header
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table]
    assert len(rows) == 6, queued  # ready, then five steps
    assert all(NUMBER.match(cell) for row in rows for cell in row), rows
    assert "50 of 50 answered" in queued
    memory_goals = table_rows(section(results, GOALS), "memory")
    [goal] = [g for g in memory_goals if g[1].startswith("(bytes)")]
    assert goal[-1] in ("met", "**missed**"), goal


COMPANY_CASES = (
    *(f"companies-{n}-{lane}" for n in (1, 10, 100) for lane in ("serial", "batch")),
    "companies-100-serial-3r",
)


def test_quick_companies_cases_report_scale_figures_and_goals(tmp_path: Path) -> None:
    """1, 10 and 100 companies: each case's row, the scale table with the idle service's
    connections, series and Redis commands, and the goals at 100 companies judged."""
    stdout, results = quick_bench(tmp_path, "--cases", "companies")
    assert_cases_reported(stdout, results, COMPANY_CASES)
    scale = section(results, "Scale in companies (companies)")
    for count in ("1", "10", "100"):
        [row] = table_rows(scale, count)
        *numbers, seen, workers, ready_rss = row[1:]
        assert all(NUMBER.match(n.removesuffix(" %")) for n in numbers), row
        # the commands seen, each with its count: which of the periodic checks fall in a quick
        # run's short idle window depends on the machine's load
        assert seen == "-" or re.fullmatch(r"[A-Z]+ \d+(, [A-Z]+ \d+)*", seen), row
        assert workers == "0", f"an idle company holds no worker task: {row}"
        assert NUMBER.match(ready_rss) and float(ready_rss) > 0, row
    memory = r"([\d,]+ KB of RSS|no RSS this can measure)"
    assert re.search(rf"An idle company costs {memory} \(ready .* no task once idle", scale)
    [three] = [line for line in scale.splitlines() if line.startswith("With 3 replicas")]
    assert re.search(r"[\d,]+/s = \d+ % of the ideal, [\d.]+ cores .* [\d.]+x one replica", three)
    goals = table_rows(section(results, GOALS), "companies")
    whats = [goal[1] for goal in goals]
    assert any(w.startswith("(companies-100-serial) one invoice per call at 50 ms") for w in whats)
    assert any(w == "service peak RSS with 100 companies" for w in whats)
    assert any(w.startswith("idle Redis commands/s with 100 companies") for w in whats)
    assert all(g[-1] in ("met", "**missed**") for g in goals), goals
