"""The Connector client keeps no cookies: it is one client shared by every company, so a cookie
one company's answer sets (a load balancer's affinity, a gateway's session) would otherwise go
out on the next company's calls, beside that company's token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.connector.client import ConnectorClient
from service.connector.results import Delivered
from service.dev.sandbox.server import AppThread
from service.tenants import Tenant

ACME = Tenant("1001", "ACME", SecretStr("acme-token-5d1f"))
BETA = Tenant("2002", "BETA", SecretStr("beta-token-93c4"))


@asynccontextmanager
async def cookie_setting_connector() -> AsyncIterator[tuple[str, list[str | None]]]:
    """A Connector front that sets a session cookie on every answer and notes the Cookie header
    of each request it gets; reached by a host name, as a Connector is (a cookie jar ignores
    cookies from a bare IP address, so an address would hide a jar that keeps them)."""
    seen: list[str | None] = []

    async def contacts(request: Request) -> JSONResponse:
        seen.append(request.headers.get("cookie"))
        answer = JSONResponse({"response": "SUCCESS"})
        answer.set_cookie("gateway-session", f"for-{request.headers.get('company')}", path="/")
        return answer

    app = Starlette(routes=[Route("/customerContacts", contacts, methods=["POST"])])
    with AppThread(app, "127.0.0.1", 0, "cookie-connector") as running:
        yield running.url.replace("127.0.0.1", "localhost"), seen


async def test_a_cookie_set_for_one_company_never_reaches_another() -> None:
    async with cookie_setting_connector() as (url, seen):
        client = ConnectorClient(url, 5.0)
        try:
            first = await client.post(ACME, "/customerContacts", b'{"ContactCode": "A"}')
            second = await client.post(BETA, "/customerContacts", b'{"ContactCode": "B"}')
        finally:
            await client.aclose()
    assert isinstance(first, Delivered) and isinstance(second, Delivered)
    assert seen == [None, None], f"a cookie went out with a call: {seen}"
