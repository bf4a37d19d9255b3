"""What a Cloud Connector call came to: four values, because the lanes treat each differently.

* :class:`Delivered` — ``{"response": "SUCCESS"}``.
* :class:`Rejected` — the Connector answered ERROR. ``record_index`` is set when the message
  names the offending record of an array, ``whole_call`` when the refusal is about the call
  itself, so splitting the batch cannot help. Only the front door's statuses say that (see
  :data:`FRONT_DOOR`: token, endpoint, method, media type, size): nothing was processed. Any
  other 4xx with an ERROR envelope (400, 409, 422, ...) is judged as the same envelope with a
  200 would be — a refusal of records, which for an array the Connector does not store all or
  nothing may follow rows it already stored (the serial lane's ``atomic_arrays``).
* :class:`Retryable` — certainly not processed: the connection was refused before anything was
  sent, HTTP 429, or HTTP 503 carrying the Connector's own ERROR envelope ("try later"), or
  a refused token (``token_refused``): HTTP 401 with that envelope, or a 401/403 without one —
  a gateway in front of the Connector turned the token away before anything was processed.
  That is not the records' fault: the lanes open the tenant's breaker at once and its records
  wait until a call with its token (perhaps a rotated one) succeeds, instead of being
  dead-lettered. A 429 or 503 may carry ``Retry-After`` (RFC 9110 §10.2.3): the next attempt
  waits at least that long (``retry_after_s``, capped by the caller's bound).
* :class:`Unknown` — the request was sent and no verdict came back: a timeout, a dropped
  connection, 500/502/504 (a proxy in front of the Connector answers those after Sage may have
  stored the record), or any answer without an envelope. Safe to resend for idempotent
  upserts, never for transactions.

HTTP 200 with ``"response": "ERROR"`` is a failure: the envelope decides, not the status.
A redirect is a :class:`Rejected` of the whole call (see :func:`refused_redirect`).

Pure: no HTTP library here, so every branch is unit-tested without a server;
:mod:`service.connector.client` makes the calls.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from service.redaction import MASK

_RECORD_INDEX = re.compile(r"^record (\d+):")

FRONT_DOOR = frozenset({401, 403, 404, 405, 406, 407, 411, 413, 414, 415, 431})
"""4xx statuses that refuse a call before any record is looked at: authentication, an unknown
endpoint or method, a media type or size the server will not take. Nothing was processed."""

RETRY_AFTER_MAX_S = 60.0
"""The longest ``Retry-After`` obeyed unless the caller gives its own bound
(``SAGEBRIDGE_RETRY_AFTER_MAX_S``): a server's hint must not park a tenant for hours."""


@dataclass(frozen=True, slots=True)
class Delivered:
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rejected:
    message: str
    record_index: int | None = None
    whole_call: bool = False


@dataclass(frozen=True, slots=True)
class Retryable:
    reason: str
    token_refused: bool = False
    """The tenant's token was refused (the Connector's 401, or a gateway's 401/403 without an
    envelope); the breaker opens at once."""
    gateway: bool = False
    """The refusal came without the Connector's envelope: from a gateway in front of it."""
    retry_after_s: float | None = None
    """The server's ``Retry-After``, in seconds from the answer, already capped: the next
    attempt waits at least this long."""


@dataclass(frozen=True, slots=True)
class Unknown:
    reason: str


CallResult = Delivered | Rejected | Retryable | Unknown


def classify(
    status: int,
    content: bytes,
    *,
    retry_after: str | None = None,
    retry_after_max_s: float = RETRY_AFTER_MAX_S,
    now: datetime | None = None,
) -> CallResult:
    """Map an HTTP answer to a :data:`CallResult`.

    Only what proves the request was not processed is :class:`Retryable`; every other failure
    after sending is :class:`Unknown`, because the real Connector (or a proxy before it) can
    fail an answer after Sage stored the record. ``retry_after`` is the answer's
    ``Retry-After`` header, read (against ``now``, for its date form) only for a retryable
    429 or 503."""
    envelope = _envelope(content)
    detail = f"HTTP {status}"
    if envelope is not None and envelope.get("message"):
        detail += f": {envelope['message']}"
    refused = envelope is not None and envelope.get("response") == "ERROR"
    if status == 429 or (status == 503 and refused):
        wait = retry_after_seconds(retry_after, cap_s=retry_after_max_s, now=now)
        return Retryable(detail, retry_after_s=wait)
    if status == 401 and refused:
        return Retryable(detail, token_refused=True)
    if status in (401, 403) and envelope is None:
        return Retryable(
            f"HTTP {status} without a response envelope: a gateway in front of the Cloud "
            "Connector refused the token; nothing was processed",
            token_refused=True,
            gateway=True,
        )
    if envelope is None:
        return Unknown(f"HTTP {status} without a response envelope")
    if status >= 500:
        return Unknown(detail)
    if envelope.get("response") == "SUCCESS" and 200 <= status < 300:
        return Delivered(envelope)
    message = str(envelope.get("message") or "Cloud Connector answered ERROR")
    if status in FRONT_DOOR:
        return Rejected(f"HTTP {status}: {message}", whole_call=True)
    match = _RECORD_INDEX.match(message)
    index = int(match.group(1)) if match else None
    return Rejected(f"HTTP {status}: {message}" if status >= 400 else message, index)


def retry_after_seconds(
    value: str | None, *, cap_s: float = RETRY_AFTER_MAX_S, now: datetime | None = None
) -> float | None:
    """Seconds a ``Retry-After`` value asks for (RFC 9110 §10.2.3: delay-seconds or an
    HTTP-date), at most ``cap_s``; ``None`` when absent or unreadable (the backoff alone then
    decides). A date in the past asks for no wait."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return min(float(text), cap_s)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" or an obsolete form: HTTP dates are always UTC
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), cap_s)


def refused_redirect(status: int, location: str | None) -> Rejected | None:
    """A 3xx answer as a refusal of the whole call, naming the host its Location points at;
    ``None`` for any other status.

    Redirects are never followed: one would carry the token and the record to wherever its
    Location points, so nothing is sent there, nor sent again."""
    if not 300 <= status < 400:
        return None
    try:
        host = urlsplit(location or "").hostname
    except ValueError:  # e.g. a malformed IPv6 literal
        where = "to an unreadable Location"
    else:
        if host:
            where = f"to host {host[:255]}"
        else:
            where = "within the Cloud Connector" if location else "without a Location"
    return Rejected(
        f"HTTP {status}: the Cloud Connector answered with a redirect {where}; "
        "redirects are not followed, so nothing was sent there",
        whole_call=True,
    )


def masked(result: CallResult, token: str) -> CallResult:
    """``result`` with ``token`` masked in its text (message or reason).

    The Connector's own words are quoted in replies, dead letters and logs, so the calling
    tenant's token must not survive in them, even when the Connector echoes it."""
    if not token:
        return result
    if isinstance(result, Rejected) and token in result.message:
        return dataclasses.replace(result, message=result.message.replace(token, MASK))
    if isinstance(result, (Retryable, Unknown)) and token in result.reason:
        return dataclasses.replace(result, reason=result.reason.replace(token, MASK))
    return result


def _envelope(content: bytes) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict) and doc.get("response") in ("SUCCESS", "ERROR"):
        return doc
    return None
