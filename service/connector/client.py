"""The Sage 100 Contractor Cloud Connector client: headers, the call, and which failures mean
"not sent".

Every call ends as a :data:`~service.connector.results.CallResult`. A failure to connect (or to
get a pooled connection) is :class:`Retryable`: nothing was sent. Any failure after that — a
timeout, a dropped connection — is :class:`Unknown`: the Connector may have stored the record.

No redirect is followed (:func:`~service.connector.results.refused_redirect`), and the calling
tenant's token is masked in every result's text (:func:`~service.connector.results.masked`).
A transactional call carries the tenant lock's fence as ``X-Fencing-Token``.

Each call is an ``httpx.Request`` handed straight to the ``httpx-aiohttp`` transport: httpx's
models and transport interface with aiohttp's connection handling, which costs a fraction of
httpx's own transport per call — the serial lane pays that on every call while it holds the
tenant's lock. ``httpx.AsyncClient`` is left out on purpose: everything its layer adds per call
(merging default headers and cookies, the auth and redirect steps, keeping cookies) is what
this client must not do — no redirect is followed, and no cookie one company's answer sets may
ride on another company's call — and that layer cost a quarter of the whole call's CPU (figures
in bench/RESULTS.md). The transport maps aiohttp's errors onto httpx's coarsely (a connection
dropped mid-request becomes ``httpx.ConnectTimeout``), so whether a request was sent is judged
by the aiohttp error it keeps as the cause, never by the httpx type alone.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from service.connector.network import CA_FILE, ConnectorNetwork
from service.connector.results import (
    RETRY_AFTER_MAX_S,
    CallResult,
    Retryable,
    Unknown,
    classify,
    masked,
    refused_redirect,
)
from service.tenants import Tenant, TenantKey

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
"""At most this much of a call's timeout goes to getting a connection (nothing sent yet)."""

USER_AGENT = "sagebridge"
"""How calls name their client in the Connector's and proxies' logs."""

SHARED_CONNECTIONS = 64
"""The pool's room for calls any company may take (the batch lane's arrays)."""


def pool_size(companies: int) -> int:
    """Connections for a deployment writing to ``companies`` companies: the shared room plus
    one per company. Each company's serial lane makes one call at a time, and a call waiting
    for a pooled connection holds the company's lock while another company's call goes on;
    with a fixed pool, companies past its size would take turns instead of running side by
    side (``bench/RESULTS.md``, the companies cases)."""
    return SHARED_CONNECTIONS + companies


_NOT_SENT = (
    aiohttp.ClientConnectorError,  # refused, unreachable, DNS, TLS handshake
    aiohttp.ConnectionTimeoutError,  # no connection (or no pooled one) in time
    aiohttp.ClientHttpProxyError,  # the proxy refused the tunnel: nothing reached the Connector
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)
"""Failures before a byte of the request left: the record certainly did not reach Sage."""


class ConnectorClient:
    """One pooled HTTP client for all tenants; each call carries its own tenant's headers.

    ``timeout_s`` bounds a whole call. Waiting for a pooled connection and connecting count
    against at most 10 s of it and end as :class:`Retryable` (nothing was sent); a timeout
    after that is :class:`Unknown`."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float,
        *,
        max_connections: int = SHARED_CONNECTIONS,
        retry_after_max_s: float = RETRY_AFTER_MAX_S,
        network: ConnectorNetwork | None = None,
    ) -> None:
        """``retry_after_max_s`` caps a ``Retry-After`` the Connector asks for; ``network``
        is the TLS trust, client certificate and proxy (:mod:`service.connector.network`)."""
        self._base_url = base_url.rstrip("/")
        self._timeout_s = timeout_s
        self._retry_after_max_s = retry_after_max_s
        self._network = network or ConnectorNetwork()
        connect_s = min(timeout_s, CONNECT_TIMEOUT_S)
        self._timeout = httpx.Timeout(timeout_s, connect=connect_s, pool=connect_s)
        self._limits = httpx.Limits(max_connections=max_connections)
        self._timeout_extension = self._timeout.as_dict()
        verify = self._network.ssl_context if self._network.ssl_context is not None else True
        self._ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        """Made here, at start-up: reading the CA bundle takes about 20 ms, which the first call
        would otherwise pay inside a company's lock."""
        self._transport: AiohttpTransport | None = None
        self._urls: dict[str, httpx.URL] = {}
        """Each endpoint's URL, parsed once: httpx parses a string on every request, about
        half of building one. Endpoints come from the routes, so this stays small."""
        self._tenant_headers: dict[tuple[TenantKey, bool], tuple[str, httpx.Headers]] = {}
        """Each tenant's headers (with or without a JSON body) as httpx keeps them, with the
        token they carry: httpx normalizes every header of a dict on every request. A rotated
        token replaces its tenant's entry, so this holds two per company at most."""

    def _transport_now(self) -> AiohttpTransport:
        """The transport, made on first use so that its pool belongs to the running event loop."""
        if self._transport is None:
            network, context = self._network, self._ssl_context
            # The transport's own session would keep cookies: one client serves every company,
            # and a cookie one company's answer sets must not go out on another's call.
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._limits.max_connections or 0,
                    keepalive_timeout=self._limits.keepalive_expiry,
                    ssl=context,
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._transport = AiohttpTransport(
                verify=context,
                proxy=httpx.Proxy(network.proxy) if network.proxy is not None else None,
                limits=self._limits,
                trust_env=False,
                client=session,
            )
        return self._transport

    async def post(
        self, tenant: Tenant, endpoint: str, payload: bytes, *, fence: int | None = None
    ) -> CallResult:
        """POST ``payload`` (a JSON object or array, already encoded) to ``endpoint``."""
        token = tenant.secret()
        headers = self._headers(tenant, token, json_body=True, fence=fence)
        return _told(tenant, await self._call("POST", endpoint, headers, token, content=payload))

    async def get(self, tenant: Tenant, endpoint: str, params: dict[str, str]) -> CallResult:
        """The Connector's list GET (a read; never changes Sage)."""
        token = tenant.secret()
        headers = self._headers(tenant, token, json_body=False, fence=None)
        return _told(tenant, await self._call("GET", endpoint, headers, token, params=params))

    def _headers(
        self, tenant: Tenant, token: str, *, json_body: bool, fence: int | None
    ) -> httpx.Headers:
        """The call's headers: the tenant's kept ones (see ``_tenant_headers``), and a copy of
        them with the fence when there is one. httpx copies what a request is given, so the
        kept ones are never changed."""
        place = (tenant.key, json_body)
        kept = self._tenant_headers.get(place)
        if kept is None or kept[0] != token:
            made = httpx.Headers({**_COMMON_HEADERS, **_headers(tenant, token, json_body)})
            kept = self._tenant_headers[place] = (token, made)
        if fence is None:
            return kept[1]
        fenced = kept[1].copy()
        fenced["X-Fencing-Token"] = str(fence)
        return fenced

    async def _call(
        self,
        method: str,
        endpoint: str,
        headers: httpx.Headers,
        token: str,
        *,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> CallResult:
        # The body as a ready stream: httpx then leaves framing (Host, Content-Length) to
        # aiohttp, which sets both on every request anyway, instead of copying the headers
        # twice more to add them.
        request = httpx.Request(
            method,
            self._url(endpoint),
            params=params,
            headers=headers,
            stream=httpx.ByteStream(content or b""),
            extensions={"timeout": self._timeout_extension},
        )
        request.read()  # the transport sends ``request.content``; unread, it would send chunks
        try:
            async with asyncio.timeout(self._timeout_s):  # the whole call, not each read
                response = await self._transport_now().handle_async_request(request)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
        except (httpx.TransportError, aiohttp.ClientError, TimeoutError) as exc:
            return _failure(exc)
        redirect = refused_redirect(response.status_code, response.headers.get("Location"))
        result = redirect or classify(
            response.status_code,
            response.content,
            retry_after=response.headers.get("Retry-After"),
            retry_after_max_s=self._retry_after_max_s,
        )
        return masked(result, token)

    def _url(self, endpoint: str) -> httpx.URL:
        url = self._urls.get(endpoint)
        if url is None:
            url = self._urls[endpoint] = httpx.URL(self._base_url + endpoint)
        return url

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()


_COMMON_HEADERS = {
    "Accept": "*/*",
    "Accept-Encoding": "gzip, deflate",
    "Connection": "keep-alive",
    "User-Agent": USER_AGENT,
}
"""What ``httpx.AsyncClient`` would have sent on every call, with our own name."""


def _failure(exc: BaseException) -> Retryable | Unknown:
    """Whether a failed call was sent, judged by the deepest error known (see the module
    docstring): only a failure to connect proves nothing reached the Connector."""
    cause = exc.__cause__ if isinstance(exc.__cause__, aiohttp.ClientError | TimeoutError) else exc
    name = type(cause).__name__
    if isinstance(cause, aiohttp.ClientConnectorCertificateError):
        error = cause.certificate_error
        detail = getattr(error, "verify_message", None) or type(error).__name__
        return Retryable(
            f"cannot connect to the Cloud Connector: its TLS certificate is not trusted "
            f"({detail}); {CA_FILE} names the CA bundle to trust"
        )
    if isinstance(cause, _NOT_SENT):
        return Retryable(f"cannot connect to the Cloud Connector: {name}")
    if isinstance(cause, TimeoutError | httpx.TimeoutException):
        return Unknown(f"no answer within the timeout ({name})")
    return Unknown(f"connection failed mid-request ({name})")


def _told(tenant: Tenant, result: CallResult) -> CallResult:
    """``result``, after one log line if it says the tenant's token was refused."""
    if isinstance(result, Retryable) and result.token_refused:
        who = (
            "a gateway in front of the Cloud Connector refused this tenant's token (HTTP 401/403 "
            "without an envelope)"
            if result.gateway
            else "the Cloud Connector refused this tenant's token (HTTP 401)"
        )
        log.error(
            f"{who}: its breaker opens and its records wait, none dead-lettered; replace the "
            "token (a token_file is re-read when it changes), or fix the gateway",
            extra={"customer": tenant.customer, "company": tenant.company, "reason": result.reason},
        )
    return result


def _headers(tenant: Tenant, token: str, json_body: bool) -> dict[str, str]:
    headers = {"Auth-Token": token}
    if json_body:
        headers["Content-Type"] = "application/json"
    headers["customer"] = tenant.customer
    headers["company"] = tenant.company
    return headers
