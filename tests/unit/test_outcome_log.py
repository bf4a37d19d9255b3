"""The per-event outcome lines: one JSON object per line, the common fields first, in order
with whatever the stream's text layer already held."""

from __future__ import annotations

import io

import orjson

from service.logs import OutcomeLog

LINES = [
    {"msg": "event delivered", "event_id": "ev-1", "outcome": "SUCCESS", "latency_ms": 1.5},
    {"msg": "event failed", "event_id": "ev-2", "outcome": "ERROR", "error": 'a "quoted" é'},
]


def _read(text: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in text.splitlines()]


def test_lines_on_a_byte_stream_are_json_with_the_common_fields_first() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8")
    stream.write("earlier text line\n")  # still in the text layer's buffer
    OutcomeLog("INFO", stream).write(iter(LINES))
    first, *rest = raw.getvalue().decode().splitlines()
    assert first == "earlier text line"
    docs = [orjson.loads(line) for line in rest]
    assert [list(d)[:4] for d in docs] == [["ts", "level", "logger", "msg"]] * 2
    assert [d["logger"] for d in docs] == ["sagebridge.events"] * 2
    assert [{k: d[k] for k in line} for d, line in zip(docs, LINES, strict=True)] == LINES


def test_a_text_only_stream_gets_the_same_lines() -> None:
    stream = io.StringIO()
    OutcomeLog("INFO", stream).write(LINES)
    assert [d["event_id"] for d in _read(stream.getvalue())] == ["ev-1", "ev-2"]


def test_nothing_is_written_above_info() -> None:
    stream = io.StringIO()
    OutcomeLog("WARNING", stream).write(LINES)
    assert stream.getvalue() == ""
