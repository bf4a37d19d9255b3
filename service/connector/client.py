"""The Sage 100 Contractor Cloud Connector client: headers, the call, and which failures mean
"not sent".

Every call ends as a :data:`~service.connector.results.CallResult`. A failure to connect (or to
get a pooled connection) is :class:`Retryable`: nothing was sent. Any failure after that — a
timeout, a dropped connection — is :class:`Unknown`: the Connector may have stored the record.

No redirect is followed (:func:`~service.connector.results.refused_redirect`), and the calling
tenant's token is masked in every result's text (:func:`~service.connector.results.masked`).
A transactional call carries the tenant lock's fence as ``X-Fencing-Token``.

The client is aiohttp rather than httpx because its per-call client time is a fraction of
httpx's (figure in bench/RESULTS.md), and the serial lane pays that on every record while it
holds the tenant's lock.
"""

from __future__ import annotations

import logging

import aiohttp

from service.connector.results import (
    CallResult,
    Retryable,
    Unknown,
    classify,
    masked,
    refused_redirect,
)
from service.tenants import Tenant

log = logging.getLogger(__name__)


class ConnectorClient:
    """One pooled HTTP client for all tenants; each call carries its own tenant's headers.

    ``timeout_s`` bounds a whole call. Waiting for a pooled connection and connecting count
    against at most 10 s of it and end as :class:`Retryable` (nothing was sent); a timeout
    after that is :class:`Unknown`."""

    def __init__(self, base_url: str, timeout_s: float, *, max_connections: int = 64) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 10.0))
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        """The session, made on first use so that it belongs to the running event loop."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=self._max_connections),
            )
        return self._session

    async def post(
        self, tenant: Tenant, endpoint: str, payload: bytes, *, fence: int | None = None
    ) -> CallResult:
        """POST ``payload`` (a JSON object or array, already encoded) to ``endpoint``."""
        headers = _headers(tenant, json_body=True, fence=fence)
        return _told(tenant, await self._call("POST", endpoint, headers, data=payload))

    async def get(self, tenant: Tenant, endpoint: str, params: dict[str, str]) -> CallResult:
        """The Connector's list GET (a read; never changes Sage)."""
        headers = _headers(tenant, json_body=False, fence=None)
        return _told(tenant, await self._call("GET", endpoint, headers, params=params))

    async def _call(
        self,
        method: str,
        endpoint: str,
        headers: dict[str, str],
        *,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> CallResult:
        try:
            async with self._http().request(
                method,
                self._base_url + endpoint,
                data=data,
                params=params,
                headers=headers,
                allow_redirects=False,
            ) as response:
                redirect = refused_redirect(response.status, response.headers.get("Location"))
                result = redirect or classify(response.status, await response.read())
                return masked(result, headers["Auth-Token"])
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            return Retryable(f"cannot connect to the Cloud Connector: {type(exc).__name__}")
        except TimeoutError as exc:
            return Unknown(f"no answer within the timeout ({type(exc).__name__})")
        except aiohttp.ClientError as exc:
            return Unknown(f"connection failed mid-request ({type(exc).__name__})")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _told(tenant: Tenant, result: CallResult) -> CallResult:
    """``result``, after one log line if it says the tenant's token was refused."""
    if isinstance(result, Retryable) and result.token_refused:
        log.error(
            "the Cloud Connector refused this tenant's token (HTTP 401): its breaker opens and "
            "its records wait, none dead-lettered; replace the token (a token_file is re-read "
            "when it changes)",
            extra={"customer": tenant.customer, "company": tenant.company, "reason": result.reason},
        )
    return result


def _headers(tenant: Tenant, *, json_body: bool, fence: int | None) -> dict[str, str]:
    headers = {"Auth-Token": tenant.secret()}
    if json_body:
        headers["Content-Type"] = "application/json"
    headers["customer"] = tenant.customer
    headers["company"] = tenant.company
    if fence is not None:
        headers["X-Fencing-Token"] = str(fence)
    return headers
