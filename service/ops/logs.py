"""Structured logs: one JSON object per line, with the ``extra`` fields of each call.

Tokens never reach this module: :class:`~service.tenants.Tenant` hides its token in ``repr``
and no call site logs headers. As a second line of defence, every line is rendered and then
passed through a :class:`~service.redaction.Redactor` of the known secrets (tokens, the SASL
and Redis passwords): the formatter's lines and the outcome lines alike.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from service.answers.outcomes import Outcome, Subject
from service.redaction import Redactor

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._redactor = Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return self._redactor.text(orjson.dumps(doc, default=str).decode())


def configure(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class OutcomeLog:
    """One JSON line per event outcome — the line operators search by ``event_id``.

    At thousands of events a second the logging module's per-record machinery (a LogRecord,
    handler locks, a formatter call) costs more than delivering the event. These lines have a
    fixed shape, so they are rendered with orjson and written to stderr in one write per
    answered batch, in the same format as every other log line. They quote event fields and
    the Connector's messages, so the known ``secrets`` are masked here as the formatter masks
    them.
    """

    def __init__(
        self, level: str = "INFO", stream: Any = None, secrets: Iterable[str] = ()
    ) -> None:
        self.enabled = logging.getLevelName(level.upper()) <= logging.INFO
        self._stream = stream
        self._redactor = Redactor(secrets)

    def write(self, lines: Iterable[dict[str, Any]]) -> None:
        """One line per dict (never empty: each has at least ``msg``), after the common
        ``ts``, ``level`` and ``logger`` fields; bytes straight to the stream's buffer."""
        if not self.enabled:
            return
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        head = {"ts": stamp, "level": "info", "logger": "sagebridge.events"}
        opening = orjson.dumps(head)[:-1] + b","  # the head's fields, then each line's
        bodies = [orjson.dumps(line)[1:] for line in lines]
        if not bodies:
            return
        between = b"\n" + opening  # joined in one pass, not two concatenations per line
        rendered = opening + between.join(bodies) + b"\n"
        rendered = self._redactor.data(rendered)
        stream = self._stream or sys.stderr
        raw = getattr(stream, "buffer", None)
        if raw is None:
            stream.write(rendered.decode())
            stream.flush()
            return
        stream.flush()  # whatever the text layer holds goes first
        raw.write(rendered)
        raw.flush()


def outcome_line(subject: Subject, outcome: Outcome, latency_s: float) -> dict[str, Any]:
    """The outcome line of one event, carrying the ids an operator searches by."""
    ok = outcome.ok
    line: dict[str, Any] = {
        "msg": "event delivered" if ok else "event failed",
        "event_id": subject.event_id,
        "correlation_id": subject.correlation_id,
        "type": subject.type,
        "outcome": "SUCCESS" if ok else "ERROR",
        "attempts": outcome.attempts,
        "latency_ms": round(latency_s * 1000, 1),
    }
    if subject.tenant is not None:
        line["tenant"] = _tenant_text(subject.tenant)
    if not ok:
        line["stage"] = str(outcome.stage)
        line["error"] = outcome.message
    return line


@functools.lru_cache(maxsize=10_000)  # the configured tenants; the bound is a guard
def _tenant_text(tenant: tuple[str, str]) -> str:
    """An outcome line's ``customer/company``, made once per tenant."""
    return f"{tenant[0]}/{tenant[1]}"
