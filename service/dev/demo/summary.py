"""The table the demo prints at the end."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from service.dev.demo.feed import FeedEvent
from service.dev.demo.tally import Tally

STAGE_ORDER = ("validation", "parse", "route", "connector", "unknown_outcome")


def summary_lines(
    feed: list[FeedEvent], tally: Tally, stats: dict[str, Any], wall_s: float
) -> list[str]:
    """The table printed at the end; plain text, one fact a line, so CI logs can grep it."""
    bodies = tally.bodies()
    errors = tally.errors()
    stages = Counter(str(b.get("stage")) for b in errors)
    tenants = Counter("/".join(e.tenant) for e in feed)
    kinds = Counter(e.kind.split(":")[0] for e in feed)
    calls, records = int(stats.get("calls", 0)), int(stats.get("records", 0))
    per_call = records / calls if calls else 0.0

    def row(label: str, value: object, note: str = "") -> str:
        return f"  {label:<30}{value!s:>8}{'   ' + note if note else ''}"

    lines = [
        "",
        "sagebridge demo: summary",
        row("events sent", len(feed), ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))),
        row("SUCCESS", len(bodies) - len(errors)),
        row("ERROR", len(errors)),
    ]
    lines += [row(f"  stage {s}", stages[s]) for s in _ordered(stages)]
    lines += [
        row("dead letters", len(tally.dead_letters)),
        row("tenants", len(tenants), ", ".join(f"{t} {n}" for t, n in sorted(tenants.items()))),
        row("connector calls", calls, f"batch calls {stats.get('batch_calls', 0)}"),
        row("records stored", records, f"{per_call:.1f} records per call"),
        row("max concurrent transactional", stats.get("max_concurrent_transactional", 0)),
        row("violations", stats.get("violations", 0)),
        row("wall time", f"{wall_s:.1f}s", f"{len(feed) / max(wall_s, 1e-6):,.0f} events/s"),
    ]
    lines += _salesforce_lines(feed, tally)
    examples = _examples(errors)
    if examples:
        lines += ["", "example ERROR replies:"]
        lines += ["  " + orjson.dumps(b).decode() for b in examples]
    return lines


def _salesforce_lines(feed: list[FeedEvent], tally: Tally) -> list[str]:
    """Each Salesforce change event and what became of it: mapped and sent, or why not."""
    crm = [e for e in feed if e.note]
    if not crm:
        return []
    lines = ["", "Salesforce change events (contracts/mappings/salesforce_contact.yaml):"]
    width = max(len(sent.note) for sent in crm) + 2  # the longest label still leaves a gap
    for sent in crm:
        body = tally.replies.get(sent.event_id or "", {})
        outcome = str(body.get("response", "no reply"))
        if body.get("stage"):
            message = str(body.get("message", ""))
            outcome += f" {body['stage']}: " + (
                message[:88] + "…" if len(message) > 90 else message
            )
        lines.append(f"  {sent.event_id}  {sent.note:<{width}}{outcome}")
    return lines


def _ordered(stages: Counter[str]) -> list[str]:
    known = [s for s in STAGE_ORDER if stages[s]]
    return known + sorted(set(stages) - set(STAGE_ORDER))


def _examples(errors: list[dict[str, Any]], limit: int = 3) -> list[dict[str, Any]]:
    """One ERROR reply per stage (validation first), so the different shapes are visible."""
    chosen: dict[str, dict[str, Any]] = {}
    for body in sorted(errors, key=lambda b: str(b.get("event_id"))):
        chosen.setdefault(str(body.get("stage")), body)
    return [chosen[s] for s in _ordered(Counter(chosen))][:limit]
