"""The console's composition root: settings in, a Starlette app out, and ``serve`` to run it.

Errors become pages here, once: bad input a 400 with its sentence, a missing or foreign CSRF
token a 403, Kafka or Redis away a 503 with the tools' one line, anything else a 500 that says
to look at the console's log (which has the traceback; the page never does).
"""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from service.config import Settings
from service.console.auth import PasswordCheck, Sessions
from service.console.forms import BadInput
from service.console.guard import CsrfRefused, Guard
from service.console.pages import Console
from service.console.render import Pages
from service.console.settings import ConsoleSettings
from service.console.sources import Sources
from service.errors import ToolError
from service.redaction import Redactor
from service.tenants import TenantDirectory, known_secrets

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def create_console(
    settings: Settings, tenants: TenantDirectory, console: ConsoleSettings
) -> Starlette:
    """The console app for these settings (nothing is connected until a page asks)."""
    secrets = known_secrets(settings, tenants)
    password = console.password.get_secret_value() if console.password else ""
    secrets.add(password)
    pages = Pages(Redactor(secrets))
    guard = Guard(
        pages,
        Sessions(console.session_hours * 3600),
        password=PasswordCheck(password) if password else None,
        proxy_header=console.trusted_proxy_header or None,
    )
    handlers = Console(
        pages, Sources.of(settings, tenants, console.audit_topic), console.max_letters
    )

    async def bad_input(request: Request, exc: Exception) -> Response:
        return pages.problem(request, 400, "Cannot do that", str(exc))

    async def csrf(request: Request, exc: Exception) -> Response:
        return pages.problem(
            request,
            403,
            "Refused: the form is not from this console",
            "The request did not carry this session's form token. Reload the page and try again.",
        )

    async def unreachable(request: Request, exc: Exception) -> Response:
        return pages.problem(request, 503, "Cannot reach the service's state", str(exc))

    async def failed(request: Request, exc: Exception) -> Response:
        log.exception("console page failed", extra={"path": request.url.path})
        return pages.problem(
            request, 500, "Something went wrong", "The console's log has the details."
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return pages.problem(request, exc.status_code, "Not here", str(exc.detail))

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [
        Route("/healthz", healthz),
        Route("/login", guard.login_page, methods=["GET"]),
        Route("/login", guard.login, methods=["POST"]),
        Route("/logout", guard.logout, methods=["POST"]),
        Route("/", handlers.overview),
        Route("/letters", handlers.letters),
        Route("/letters/replay", handlers.replay, methods=["POST"]),
        Route("/letters/{partition:int}/{offset:int}", handlers.letter),
        Route("/in-doubt", handlers.in_doubt),
        Route("/in-doubt/resolve", handlers.resolve, methods=["POST"]),
        Route("/events", handlers.history),
        Route("/tenants", handlers.tenants),
        Route("/tenants/{action:str}", handlers.pause, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard.dispatch)],
        exception_handlers={
            HTTPException: http_error,
            BadInput: bad_input,
            CsrfRefused: csrf,
            ToolError: unreachable,
            Exception: failed,
        },
    )


def serve() -> None:
    """``sagebridge console``: refuses to start (one line) without a way to sign in."""
    import uvicorn

    from service.config import load_settings
    from service.console.settings import load_console_settings
    from service.ops import logs

    console = load_console_settings()
    settings = load_settings()
    tenants = TenantDirectory.from_settings(settings)
    secrets = known_secrets(settings, tenants)
    if console.password is not None:
        secrets.add(console.password.get_secret_value())
    logs.configure(settings.log_level, secrets=secrets)
    uvicorn.run(
        create_console(settings, tenants, console),
        host=console.host,
        port=console.port,
        proxy_headers=True,
        forwarded_allow_ips=console.forwarded_allow_ips,
        log_config=None,
        server_header=False,
    )
