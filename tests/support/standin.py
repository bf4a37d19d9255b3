"""Stand-in Cloud Connectors: tiny Starlette apps served over real HTTP on the test's event loop.

The sandbox answers as the real Connector does; these answer as a hostile or broken one would (a
redirect elsewhere, a message that echoes the caller's token), and one records every request
that reaches it, so a test can prove that nothing did.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from service.ops.http_server import InLoopServer

ANY_METHOD = ["GET", "POST", "PUT", "DELETE"]


@dataclass
class Seen:
    """One request as the stand-in received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """Answers SUCCESS to anything, and keeps what it was sent."""

    seen: list[Seen] = field(default_factory=list)

    def app(self) -> Starlette:
        async def record(request: Request) -> Response:
            body = await request.body()
            self.seen.append(Seen(request.method, request.url.path, dict(request.headers), body))
            return JSONResponse({"response": "SUCCESS", "records": []})

        return _any_path(record)


def redirecting_to(base_url: str, status: int = 307) -> Starlette:
    """Answers every request with a redirect to the same path under ``base_url``."""

    async def redirect(request: Request) -> Response:
        return RedirectResponse(base_url + request.url.path, status_code=status)

    return _any_path(redirect)


def echoing_the_token() -> Starlette:
    """Refuses every call with an ERROR whose message quotes the caller's ``Auth-Token``."""

    async def refuse(request: Request) -> Response:
        token = request.headers.get("auth-token", "")
        return JSONResponse({"response": "ERROR", "message": f"token {token} is not valid here"})

    return _any_path(refuse)


def _any_path(endpoint: object) -> Starlette:
    return Starlette(routes=[Route("/{path:path}", endpoint, methods=ANY_METHOD)])  # type: ignore[arg-type]


@asynccontextmanager
async def serving(app: Starlette, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """``app`` on a free port of ``host`` for the duration; yields its base URL."""
    server = InLoopServer(app, host, 0)
    await server.start()
    try:
        yield f"http://{host}:{server.port}"
    finally:
        await server.stop()
