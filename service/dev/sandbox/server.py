"""Running the sandbox: in the foreground for ``sagebridge sandbox``, or in a thread for tests.

Tests and the demo need a real HTTP server (the bridge's client, timeouts and connection pool
are part of what is tested) that starts in milliseconds on a free port and stops cleanly, even
with hung requests outstanding; :class:`SandboxThread` is that.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from types import TracebackType
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

from service.dev.sandbox.app import ALL_METHODS, Sandbox
from service.dev.sandbox.control import control_routes
from service.dev.sandbox.options import SandboxOptions
from service.ops.http_server import bind_tcp

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


def serve(options: SandboxOptions) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM); quiet logs, no access log (headers hold
    tokens in real deployments, and per-request lines drown the bridge's own output)."""
    uvicorn.run(
        build_app(options),
        host=options.host,
        port=options.port,
        log_level="warning",
        access_log=False,
        **options.tls_config(),
    )


class _Server(uvicorn.Server):
    """A uvicorn server that says when it is listening, and on which loop."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self.ready = ready
        self.loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()


class AppThread:
    """An ASGI app served on a background daemon thread with its own event loop: the sandbox,
    and the development Schema Registry (:mod:`service.dev.registry`).

    The socket is bound *before* the thread starts, so :attr:`port` is known at once and nothing
    can take the port between choosing and serving; :meth:`start` returns only once uvicorn is
    accepting connections.
    """

    def __init__(
        self,
        app: Starlette,
        host: str,
        port: int,
        name: str,
        scheme: str = "http",
        tls: dict[str, Any] | None = None,
    ) -> None:
        self._socket = bind_tcp(host, port)
        self.port: int = self._socket.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{scheme}://{shown}:{self.port}"
        self._name = name
        ready = threading.Event()
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            log_config=None,  # leave the host process's logging alone
            lifespan="off",
            timeout_graceful_shutdown=5,
            **(tls or {}),
        )
        self._server = _Server(config, ready)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"{name}:{self.port}", daemon=True)

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # reported by start() in the caller's thread
            self._failure = exc
        finally:
            self._server.ready.set()

    def start(self) -> Self:
        """Start serving; raise if uvicorn is not accepting connections within the deadline."""
        self._thread.start()
        if not self._server.ready.wait(START_TIMEOUT_S) or not self._server.started:
            self.stop()
            raise RuntimeError(f"{self._name} did not start on {self.url}: {self._failure!r}")
        return self

    def before_stop(self) -> None:
        """Runs on the server's loop as :meth:`stop` begins (the sandbox releases hung requests)."""

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread; idempotent."""
        loop = self._server.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed since the check
                loop.call_soon_threadsafe(self.before_stop)
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(STOP_TIMEOUT_S)
        self._socket.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class SandboxThread(AppThread):
    """The sandbox on a background thread (see :class:`AppThread`)."""

    def __init__(self, options: SandboxOptions | None = None) -> None:
        self.options = options if options is not None else SandboxOptions(port=0)
        self.app = build_app(self.options)
        self.sandbox: Sandbox = self.app.state.sandbox
        super().__init__(
            self.app,
            self.options.host,
            self.options.port,
            "sandbox",
            scheme=self.options.scheme,
            tls=self.options.tls_config(),
        )

    def before_stop(self) -> None:
        self.sandbox.release_hangs()


def build_app(options: SandboxOptions) -> Starlette:
    """A Starlette app emulating the Connector; ``app.state.sandbox`` is its :class:`Sandbox`."""
    sandbox = Sandbox(options)
    app = Starlette(
        routes=[
            *control_routes(sandbox),
            Route("/{path:path}", sandbox.business, methods=ALL_METHODS),
        ]
    )
    app.state.sandbox = sandbox
    return app
