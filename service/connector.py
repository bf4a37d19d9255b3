"""The Sage 100 Contractor Cloud Connector client: headers, envelope, and what a result means.

Every call ends as one of four values, because the lanes must treat them differently:

* :class:`Delivered` — ``{"response": "SUCCESS"}``.
* :class:`Rejected` — the Connector answered ERROR. ``record_index`` is set when the message
  names the offending record of an array, ``whole_call`` when the refusal is about the call
  itself (auth, headers, endpoint), so splitting the batch cannot help.
* :class:`Retryable` — the request never reached Sage, or Sage said "try later" (5xx, 429).
* :class:`Unknown` — the request was sent but no verdict came back (read timeout, dropped
  connection, no envelope). Safe to resend for idempotent upserts, never for transactions.

HTTP 200 with ``"response": "ERROR"`` is a failure: the envelope decides, not the status.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from service.settings import Tenant

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


@dataclass(frozen=True, slots=True)
class Unknown:
    reason: str


CallResult = Delivered | Rejected | Retryable | Unknown


class ConnectorClient:
    """One pooled HTTP client for all tenants; each call carries its own tenant's headers."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float,
        *,
        max_connections: int = 64,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=max_connections),
            transport=transport,
        )

    async def post(
        self, tenant: Tenant, endpoint: str, payload: bytes, *, fence: int | None = None
    ) -> CallResult:
        """POST ``payload`` (a JSON object or array, already encoded) to ``endpoint``."""
        headers = {
            "Auth-Token": tenant.token.get_secret_value(),
            "Content-Type": "application/json",
            "customer": tenant.customer,
            "company": tenant.company,
        }
        if fence is not None:
            headers["X-Fencing-Token"] = str(fence)
        try:
            response = await self._http.post(endpoint, content=payload, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return Retryable(f"cannot connect to the Cloud Connector: {type(exc).__name__}")
        except httpx.TimeoutException as exc:
            return Unknown(f"no answer within the timeout ({type(exc).__name__})")
        except httpx.TransportError as exc:
            return Unknown(f"connection failed mid-request ({type(exc).__name__})")
        return classify(response.status_code, response.content)

    async def get(self, tenant: Tenant, endpoint: str, params: dict[str, str]) -> CallResult:
        """The Connector's list GET (a read; never changes Sage)."""
        headers = {
            "Auth-Token": tenant.token.get_secret_value(),
            "customer": tenant.customer,
            "company": tenant.company,
        }
        try:
            response = await self._http.get(endpoint, params=params, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return Retryable(f"cannot connect to the Cloud Connector: {type(exc).__name__}")
        except httpx.TransportError as exc:
            return Unknown(f"lookup failed ({type(exc).__name__})")
        return classify(response.status_code, response.content)

    async def aclose(self) -> None:
        await self._http.aclose()


def classify(status: int, content: bytes) -> CallResult:
    """Map an HTTP answer to a :data:`CallResult` (pure, so every branch is unit-tested)."""
    envelope = _envelope(content)
    if status >= 500 or status == 429:
        detail = envelope.get("message") if envelope else None
        return Retryable(f"HTTP {status}" + (f": {detail}" if detail else ""))
    if envelope is None:
        if 200 <= status < 300:
            return Unknown(f"HTTP {status} without a response envelope")
        return Rejected(f"HTTP {status} without a response envelope", whole_call=True)
    if envelope.get("response") == "SUCCESS" and 200 <= status < 300:
        return Delivered(envelope)
    message = str(envelope.get("message") or "Cloud Connector answered ERROR")
    if status >= 400:
        return Rejected(f"HTTP {status}: {message}", whole_call=True)
    match = _RECORD_INDEX.match(message)
    return Rejected(message, record_index=int(match.group(1)) if match else None)


def _envelope(content: bytes) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict) and doc.get("response") in ("SUCCESS", "ERROR"):
        return doc
    return None
