"""``/healthz``, ``/readyz`` and ``/metrics`` on ``SAGEBRIDGE_HTTP_PORT``.

Readiness reads flags the service keeps in memory, and the result of a :class:`PeriodicCheck`
for Redis, which a background task on the service's event loop refreshes once a second: however
often ``/readyz`` is asked, it costs no Redis round trip of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.ops.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    checks: dict[str, bool]
    notes: dict[str, Any] = field(default_factory=dict)
    """Shown with the checks, deciding nothing (e.g. whether the ledger is durable)."""


ReadinessProbe = Callable[[], Awaitable[Readiness]]


class PeriodicCheck:
    """The latest result of ``check``, run again ``interval_s`` after the previous run finished
    (so never more often) by a task on the loop that :meth:`start` runs on."""

    def __init__(self, check: Callable[[], Awaitable[bool]], interval_s: float = 1.0) -> None:
        self._check = check
        self._interval_s = interval_s
        self.latest = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """The first result before returning, so the first request already has one."""
        self.latest = await self._check()
        self._task = asyncio.create_task(self._refresh(), name="sagebridge-periodic-check")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                self.latest = await self._check()
            except Exception:  # a broken check must not end the refreshing
                log.exception("periodic check failed")
                self.latest = False


def health_app(metrics: Metrics, readiness: ReadinessProbe) -> Starlette:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(_: Request) -> Response:
        state = await readiness()
        return JSONResponse(
            {"ready": state.ready, "checks": state.checks, **state.notes},
            status_code=200 if state.ready else 503,
        )

    async def metrics_endpoint(_: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
        ]
    )
