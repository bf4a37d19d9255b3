"""The per-event outcome lines: one JSON object per line, the common fields first, in order
with whatever the stream's text layer already held; known secrets masked in them as in every
other log line."""

from __future__ import annotations

import io
import logging

import orjson

from service.answers.outcomes import Outcome, Stage, Subject
from service.ops.logs import JsonFormatter, OutcomeLog, outcome_line

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


def test_known_secrets_are_masked_in_outcome_lines() -> None:
    """The lines quote event fields and the Connector's messages; a secret among them, also one
    JSON has to escape, is written as ``***``."""
    quoted = 'pa"ss\\word'
    stream = io.StringIO()
    lines = [
        {"msg": "event failed", "event_id": "e-1", "error": "token tok-123 is not valid"},
        {"msg": "event failed", "event_id": f"e-2 {quoted}", "error": "x"},
    ]
    OutcomeLog("INFO", stream, secrets=["tok-123", quoted]).write(lines)
    text = stream.getvalue()
    assert "tok-123" not in text and 'pa\\"ss' not in text
    first, second = _read(text)
    assert first["error"] == "token *** is not valid"
    assert second["event_id"] == "e-2 ***"


def test_the_formatter_masks_a_secret_also_where_json_escaped_it() -> None:
    quoted = 'pa"ss\\word'
    record = logging.makeLogRecord(
        {"msg": "cannot connect", "levelname": "WARNING", "error": f"auth {quoted} refused"}
    )
    line = JsonFormatter(secrets=[quoted]).format(record)
    assert orjson.loads(line)["error"] == "auth *** refused"


OUTCOMES = [
    (Subject("ev-1", "ev-1", "contact.upsert", ("CUST", "CO"), "/x"), Outcome.success(1), 0.01234),
    (
        Subject("ev-2", "corr-2", "contact.upsert", ("CUST", "CO"), "/x"),
        Outcome.success(1),
        0.01234,
    ),
    (Subject('e "3" \\ é', "e", "contact.upsert", ("C:1", 'C"2')), Outcome.success(2), 0.5),
    (Subject("ev-4", "ev-4", "contact.upsert"), Outcome.success(0), 0.5),
    (
        Subject("ev-5", "ev-5", "contact.upsert", ("CUST", "CO")),
        Outcome.failure(Stage.CONNECTOR, "refused"),
        0.5,
    ),
    (Subject("ev-6", "ev-6", "contact.upsert", ("CUST", "CO"), "/x"), Outcome.success(1), 1.25),
]


def test_outcome_lines_are_each_outcome_line_written() -> None:
    """Delivered lines are put together from rendered parts: the same lines, byte for byte
    after the time stamp, as writing each :func:`outcome_line`."""
    fast, slow = io.StringIO(), io.StringIO()
    OutcomeLog("INFO", fast).write_outcomes(OUTCOMES)
    OutcomeLog("INFO", slow).write(outcome_line(s, o, took) for s, o, took in OUTCOMES)

    def after_stamp(text: str) -> list[str]:
        return [line.partition('"level"')[2] for line in text.splitlines()]

    assert after_stamp(fast.getvalue()) == after_stamp(slow.getvalue())
    assert len(after_stamp(fast.getvalue())) == len(OUTCOMES)
    assert _read(fast.getvalue())[1]["latency_ms"] == 12.3
