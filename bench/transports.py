"""``python -m bench.transports``: client CPU per sequential POST to the sandbox, for each HTTP
client the Connector client could be built on (aiohttp, plain httpx, httpx over the
``httpx-aiohttp`` transport). Small (a few thousand POSTs); not part of ``python -m bench``.

CPU is this process's own (``time.process_time``): the sandbox runs as its own process, so what
is counted is what the client library costs per call, whatever the server takes.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import aiohttp
import httpx
import orjson
from httpx_aiohttp import AiohttpTransport
from pydantic import SecretStr

from bench.stack import COMPANY, CUSTOMER, TOKEN
from service.connector.client import ConnectorClient
from service.connector.results import Delivered
from service.dev.sandbox.process import start_sandbox_process
from service.tenants import Tenant

Post = Callable[[bytes], Awaitable[int]]
"""One POST of a JSON body; returns the HTTP status."""

HEADERS = {
    "Auth-Token": TOKEN,
    "Content-Type": "application/json",
    "customer": CUSTOMER,
    "company": COMPANY,
}
WARM_UP = 50


class _Aiohttp(AbstractAsyncContextManager["_Aiohttp"]):
    def __init__(self, url: str) -> None:
        self._url = url + "/accountsReceivable"
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def post(self, body: bytes) -> int:
        async with self._session.post(
            self._url, data=body, headers=HEADERS, allow_redirects=False
        ) as response:
            await response.read()
            return response.status

    async def __aexit__(self, *exc: object) -> None:
        await self._session.close()


class _Httpx(AbstractAsyncContextManager["_Httpx"]):
    def __init__(self, url: str, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._client = httpx.AsyncClient(
            base_url=url, timeout=10, transport=transport, follow_redirects=False
        )

    async def post(self, body: bytes) -> int:
        response = await self._client.post("/accountsReceivable", content=body, headers=HEADERS)
        return response.status_code

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()


class _Transport(AbstractAsyncContextManager["_Transport"]):
    """httpx's models over the httpx-aiohttp transport without ``httpx.AsyncClient``: what the
    client layer (request building, header merging, cookies, redirects, auth) costs."""

    def __init__(self, url: str) -> None:
        self._url = url + "/accountsReceivable"
        self._transport = AiohttpTransport()
        self._timeout = httpx.Timeout(10).as_dict()

    async def post(self, body: bytes) -> int:
        request = httpx.Request(
            "POST", self._url, content=body, headers=HEADERS, extensions={"timeout": self._timeout}
        )
        response = await self._transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response.status_code

    async def __aexit__(self, *exc: object) -> None:
        await self._transport.aclose()


class _Service(AbstractAsyncContextManager["_Service"]):
    """The service's own Connector client, classification of the answer included."""

    def __init__(self, url: str) -> None:
        self._client = ConnectorClient(url, 10.0)
        self._tenant = Tenant(CUSTOMER, COMPANY, SecretStr(TOKEN))

    async def post(self, body: bytes) -> int:
        result = await self._client.post(self._tenant, "/accountsReceivable", body)
        return 200 if isinstance(result, Delivered) else 500

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()


Client = _Aiohttp | _Httpx | _Transport | _Service


def _clients(url: str) -> dict[str, Callable[[], Client]]:
    return {
        "aiohttp": lambda: _Aiohttp(url),
        "httpx": lambda: _Httpx(url),
        "httpx + httpx-aiohttp": lambda: _Httpx(url, AiohttpTransport()),
        "httpx-aiohttp transport alone": lambda: _Transport(url),
        "service ConnectorClient": lambda: _Service(url),
    }


async def _cpu_per_post_ms(make: Callable[[], Client], posts: int) -> float:
    async with make() as client:
        for n in range(WARM_UP + posts):
            if n == WARM_UP:
                started = time.process_time()
            status = await client.post(orjson.dumps({"InvoiceNo": f"T{n:06d}", "Amount": n}))
            if status != 200:
                raise RuntimeError(f"POST {n} answered HTTP {status}")
        return (time.process_time() - started) / posts * 1000


async def measure(url: str, posts: int, rounds: int) -> dict[str, list[float]]:
    """Client CPU ms per POST, ``rounds`` times per client, the clients taking turns."""
    figures: dict[str, list[float]] = {name: [] for name in _clients(url)}
    for _ in range(rounds):
        for name, make in _clients(url).items():
            figures[name].append(await _cpu_per_post_ms(make, posts))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.transports")
    parser.add_argument("--posts", type=int, default=1000, help="POSTs per client per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sandbox = start_sandbox_process(Path(tempfile.mkdtemp(prefix="bench-transports-")), (TOKEN,))
    try:
        figures = asyncio.run(measure(sandbox.url, args.posts, args.rounds))
    finally:
        sandbox.stop()
    print(f"client CPU per sequential POST ({args.posts} POSTs x {args.rounds} rounds):")
    for name, values in figures.items():
        best = min(values)
        shown = ", ".join(f"{v:.3f}" for v in values)
        print(f"  {name:>22}: best {best:.3f} ms (rounds: {shown})")


if __name__ == "__main__":
    main()
