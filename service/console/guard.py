"""Sign-in and CSRF for every console request, in one place.

Every path but the sign-in page, the probe and the style sheet needs a user: with a password,
the user signed in on this console (a session cookie: ``HttpOnly``, ``SameSite=Lax``, and
``Secure`` when the request arrived over TLS); behind a trusted proxy, the user its header names
(a request without that header is refused: it did not come through the proxy). Every POST but
sign-in must carry its session's CSRF token (:func:`checked_form`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.middleware.base import RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from service.console.auth import FailedSignIns, PasswordCheck, Sessions, same_token
from service.console.render import Pages

COOKIE = "sagebridge_console"
PUBLIC = ("/login", "/healthz", "/static/")
MAX_NAME = 80


class CsrfRefused(Exception):
    """A POST without its session's CSRF token: not sent by a console page."""


class Guard:
    """Who may use the console, and how they prove it."""

    def __init__(
        self,
        pages: Pages,
        sessions: Sessions,
        *,
        password: PasswordCheck | None,
        proxy_header: str | None,
    ) -> None:
        self._pages = pages
        self._sessions = sessions
        self._password = password
        self._proxy_header = proxy_header
        self._failures = FailedSignIns()

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        """The middleware: find the user and session, or answer for the page."""
        if request.url.path.startswith(PUBLIC):
            return await call_next(request)
        sid = request.cookies.get(COOKIE)
        session = self._sessions.find(sid)
        new_sid = None
        if self._proxy_header is not None:
            user = request.headers.get(self._proxy_header, "").strip()[:MAX_NAME]
            if not user:
                return self._pages.problem(
                    request,
                    401,
                    "Not signed in",
                    "This console is reached through its sign-in proxy, which did not name a "
                    "user for this request.",
                )
            if session is None:
                new_sid, session = self._sessions.open(None)
        elif session is None or session.user is None:
            target = quote(
                request.url.path + (f"?{request.url.query}" if request.url.query else "")
            )
            return RedirectResponse(f"/login?next={target}", 303)
        else:
            user = session.user
        request.state.user = user
        request.state.csrf = session.csrf
        response = await call_next(request)
        if new_sid is not None:
            self._set_cookie(request, response, new_sid)
        return response

    def _set_cookie(self, request: Request, response: Response, sid: str) -> None:
        response.set_cookie(
            COOKIE,
            sid,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )

    async def login_page(self, request: Request) -> Response:
        if self._password is None:
            return RedirectResponse("/", 303)
        return self._pages.page(
            request, "login.html", next=_local(request.query_params.get("next"))
        )

    async def login(self, request: Request) -> Response:
        if self._password is None:
            return RedirectResponse("/", 303)
        client = request.client.host if request.client else "?"
        form = await request.form()
        target = _local(_field(form, "next"))
        if self._failures.blocked(client):
            return self._pages.page(
                request,
                "login.html",
                429,
                next=target,
                error="Too many wrong passwords from here: wait a minute, then try again.",
            )
        name = _field(form, "name").strip()[:MAX_NAME]
        if not name or not self._password.matches(_field(form, "password")):
            self._failures.failed(client)
            return self._pages.page(
                request, "login.html", 401, next=target, error="Wrong name or password."
            )
        self._sessions.close(request.cookies.get(COOKIE))
        sid, _ = self._sessions.open(name)
        response = RedirectResponse(target, 303)
        self._set_cookie(request, response, sid)
        return response

    async def logout(self, request: Request) -> Response:
        await checked_form(request)
        self._sessions.close(request.cookies.get(COOKIE))
        response = RedirectResponse("/login" if self._password else "/", 303)
        response.delete_cookie(COOKIE, path="/")
        return response


async def checked_form(request: Request) -> FormData:
    """The POST's form, once its CSRF token is its session's; :class:`CsrfRefused` if not."""
    form = await request.form()
    if not same_token(_field(form, "csrf"), getattr(request.state, "csrf", "")):
        raise CsrfRefused
    return form


def _field(form: FormData, name: str) -> str:
    value: Any = form.get(name)
    return value if isinstance(value, str) else ""


def _local(target: str | None) -> str:
    """Where to go after signing in: a path on this console, never another site."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target
