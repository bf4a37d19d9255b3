"""What a Cloud Connector call came to: four values, because the lanes treat each differently.

* :class:`Delivered` — ``{"response": "SUCCESS"}``.
* :class:`Rejected` — the Connector answered ERROR. ``record_index`` is set when the message
  names the offending record of an array, ``whole_call`` when the refusal is about the call
  itself (auth, headers, endpoint), so splitting the batch cannot help.
* :class:`Retryable` — certainly not processed: the connection was refused before anything was
  sent, HTTP 429, or HTTP 503 carrying the Connector's own ERROR envelope ("try later"), or
  HTTP 401 with that envelope: the tenant's token was refused (``token_refused``). That is not
  the records' fault: the lanes open the tenant's breaker at once and its records wait until a
  call with its token (perhaps a rotated one) succeeds, instead of being dead-lettered.
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
from typing import Any
from urllib.parse import urlsplit

import orjson

from service.redaction import MASK

_RECORD_INDEX = re.compile(r"^record (\d+):")


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
    """HTTP 401: the Connector refused the tenant's token; the breaker opens at once."""


@dataclass(frozen=True, slots=True)
class Unknown:
    reason: str


CallResult = Delivered | Rejected | Retryable | Unknown


def classify(status: int, content: bytes) -> CallResult:
    """Map an HTTP answer to a :data:`CallResult`.

    Only what proves the request was not processed is :class:`Retryable`; every other failure
    after sending is :class:`Unknown`, because the real Connector (or a proxy before it) can
    fail an answer after Sage stored the record."""
    envelope = _envelope(content)
    detail = f"HTTP {status}"
    if envelope is not None and envelope.get("message"):
        detail += f": {envelope['message']}"
    refused = envelope is not None and envelope.get("response") == "ERROR"
    if status == 429 or (status == 503 and refused):
        return Retryable(detail)
    if status == 401 and refused:
        return Retryable(detail, token_refused=True)
    if envelope is None:
        return Unknown(f"HTTP {status} without a response envelope")
    if status >= 500:
        return Unknown(detail)
    if envelope.get("response") == "SUCCESS" and 200 <= status < 300:
        return Delivered(envelope)
    message = str(envelope.get("message") or "Cloud Connector answered ERROR")
    if status >= 400:
        return Rejected(f"HTTP {status}: {message}", whole_call=True)
    match = _RECORD_INDEX.match(message)
    return Rejected(message, record_index=int(match.group(1)) if match else None)


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
