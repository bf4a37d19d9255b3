"""Serving a Starlette app with uvicorn on a socket we bind ourselves.

Binding first means the port is known immediately (port 0 picks a free one) and cannot be taken
between choosing and serving. ``IPPROTO_TCP`` explicitly: asyncio sets TCP_NODELAY on accepted
sockets only when the protocol says TCP; with protocol 0, Nagle's algorithm plus delayed ACKs add
~40 ms to every response.

The health server faces whatever can reach the pod, so it bounds what a client can hold:
uvicorn answers 503 past :data:`MAX_CONNECTIONS` open connections, and (as uvicorn has no header
read timeout of its own) :class:`HeaderDeadline` closes a connection whose request headers are not
complete :data:`HEADER_TIMEOUT_S` after it opened or after its previous response.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from contextlib import suppress

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT_S = 5.0
"""How long a client may take to send a request's headers (a probe sends them at once)."""
MAX_CONNECTIONS = 32
"""Open connections (and requests in progress) past which requests are answered 503: room for
the kubelet's probes and a few Prometheus scrapers."""


def bind_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class HeaderDeadline(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection that is slow to send a request.

    The deadline is set when the connection opens and again after each response. When it passes,
    the connection is closed unless a request is being served: a client that opened a connection
    and sent half a request line (or nothing) does not hold it for ever."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._set_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._set_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._clear_deadline()
        super().connection_lost(exc)

    def _set_deadline(self) -> None:
        self._clear_deadline()
        self._deadline = self.loop.call_later(HEADER_TIMEOUT_S, self._deadline_passed)

    def _clear_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        serving = self.cycle is not None and not self.cycle.response_complete
        if not serving and not self.transport.is_closing():
            self.transport.close()


class _QuietServer(uvicorn.Server):
    """Leaves signal handling to the host application (FastStream drains on SIGTERM)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()


class InLoopServer:
    """A uvicorn server running as a task on the current event loop (health and metrics)."""

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self._socket = bind_tcp(host, port)
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            http=HeaderDeadline,
            limit_concurrency=MAX_CONNECTIONS,
            log_level="warning",
            access_log=False,
            log_config=None,
            lifespan="off",
        )
        self._server = _QuietServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        ready = asyncio.create_task(self._server.ready.wait())
        await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._task.done():
            self._task.result()  # startup failed: raise its error here

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with suppress(Exception):
                await asyncio.wait_for(self._task, 5)
        self._socket.close()
