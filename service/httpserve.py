"""Serving a Starlette app with uvicorn on a socket we bind ourselves.

Binding first means the port is known immediately (port 0 picks a free one) and cannot be taken
between choosing and serving. ``IPPROTO_TCP`` explicitly: asyncio sets TCP_NODELAY on accepted
sockets only when the protocol says TCP; with protocol 0, Nagle's algorithm plus delayed ACKs add
~40 ms to every response.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from contextlib import suppress

import uvicorn
from starlette.types import ASGIApp


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
            app, log_level="warning", access_log=False, log_config=None, lifespan="off"
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
