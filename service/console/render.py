"""Pages as HTML: autoescaped templates, a mask over every known secret, and the headers that
keep a page from running anything it did not bring itself.

Everything the console shows comes from producers (event values, headers, error texts) and is
escaped by Jinja2's autoescape: a ``<script>`` in an event is shown as text. The known secrets
(tokens, the Kafka and Redis passwords, the console's password) are masked in the finished page
as well, so a secret quoted by an error message or an event never reaches a browser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from service.redaction import Redactor

TEMPLATES = Path(__file__).parent / "templates"
MAX_SHOWN_BYTES = 64 * 1024
"""Most of a value a page shows; the rest is cut with a note (a value can be megabytes)."""

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def pretty(value: bytes | None) -> str:
    """A value as indented JSON when it is JSON, else as text; cut at :data:`MAX_SHOWN_BYTES`."""
    if value is None:
        return "(no value: a tombstone)"
    shown, cut = value[:MAX_SHOWN_BYTES], len(value) > MAX_SHOWN_BYTES
    try:
        text = orjson.dumps(orjson.loads(value), option=orjson.OPT_INDENT_2).decode()
        if len(text) > MAX_SHOWN_BYTES:
            text, cut = text[:MAX_SHOWN_BYTES], True
    except orjson.JSONDecodeError:
        text = shown.decode("utf-8", "replace")
    if cut:
        text += f"\n… cut: the value is {len(value)} bytes; {MAX_SHOWN_BYTES} shown"
    return text


class Pages:
    """Renders a template into a response, the same way for every page."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters["pretty"] = pretty

    def page(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        state = request.state
        html = self._env.get_template(template).render(
            user=getattr(state, "user", None),
            csrf=getattr(state, "csrf", ""),
            path=request.url.path,
            **context,
        )
        return HTMLResponse(self._redactor.text(html), status, headers=SECURITY_HEADERS)

    def problem(self, request: Request, status: int, title: str, detail: str) -> HTMLResponse:
        return self.page(request, "problem.html", status, title=title, detail=detail)
