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

from service.answers.outcomes import Outcome, Subject, ids_fields
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
        if self.enabled:
            self._write_rendered([orjson.dumps(line)[1:] for line in lines])

    def write_outcomes(self, outcomes: Iterable[tuple[Subject, Outcome, float]]) -> None:
        """The :func:`outcome_line` of each (subject, outcome, latency in seconds), written
        as :meth:`write` would; a plain SUCCESS's line is put together from its kind's
        rendered parts (:func:`_delivered_line`), not built as a dict and encoded."""
        if not self.enabled:
            return
        bodies: list[bytes] = []
        latency_s = -1.0
        latency = b""
        for subject, outcome, took_s in outcomes:
            if not outcome.ok:
                bodies.append(orjson.dumps(outcome_line(subject, outcome, took_s))[1:])
                continue
            if took_s != latency_s:  # one poll's events share it: rendered once for them
                latency_s, latency = took_s, orjson.dumps(round(took_s * 1000, 1))
            bodies.append(_delivered_line(subject, outcome.attempts, latency))
        self._write_rendered(bodies)

    def _write_rendered(self, bodies: list[bytes]) -> None:
        """Each line's own fields, rendered as a JSON object without its ``{``."""
        if not bodies:
            return
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        head = {"ts": stamp, "level": "info", "logger": "sagebridge.events"}
        opening = orjson.dumps(head)[:-1] + b","  # the head's fields, then each line's
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


_DELIVERED_HEAD = b'"msg":"event delivered",'
_DELIVERED_PARTS: dict[tuple[str | None, int, tuple[str, str] | None], tuple[bytes, bytes]] = {}
"""A delivered line's fields around ``latency_ms`` (``type`` to ``attempts``, then ``tenant``)
per kind of event, rendered once; every line of a batch shares them."""
MAX_DELIVERED_PARTS = 10_000
"""A guard: the kinds are the routes' types, the configured tenants and the attempts a call
may take, so far fewer than this in practice."""


def _delivered_line(subject: Subject, attempts: int, latency: bytes) -> bytes:
    """A SUCCESS's :func:`outcome_line` rendered (without its ``{``), byte for byte what
    encoding the dict would give; ``latency`` is its ``latency_ms`` already encoded."""
    kind = (subject.type, attempts, subject.tenant)
    parts = _DELIVERED_PARTS.get(kind)
    if parts is None:
        middle = orjson.dumps({"type": subject.type, "outcome": "SUCCESS", "attempts": attempts})
        end = b"}"
        if subject.tenant is not None:
            end = b"," + orjson.dumps({"tenant": _tenant_text(subject.tenant)})[1:]
        if len(_DELIVERED_PARTS) >= MAX_DELIVERED_PARTS:
            _DELIVERED_PARTS.clear()
        parts = _DELIVERED_PARTS[kind] = (b"," + middle[1:-1] + b',"latency_ms":', end)
    return b"".join((_DELIVERED_HEAD, ids_fields(subject), parts[0], latency, parts[1]))
