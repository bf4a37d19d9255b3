"""This replica's breakers, kept in Redis for the operators' console
(:mod:`service.state.breaker_reports`).

The breakers tell :meth:`BreakerBoard.changed` when one changes state, from inside the lanes'
calls; that only notes the change in memory and wakes the writer, so a call never waits for
Redis and no event costs a Redis command. The writer rewrites the replica's report when
something changed and on a slow heartbeat (which keeps the report from expiring while the
replica lives); if Redis does not answer it tries again a second later, and the data plane
carries on: the report is for people, nothing waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from datetime import UTC, datetime

from service.errors import StateUnavailable
from service.lanes.breaker import State
from service.state.breaker_reports import BreakerReports, OpenBreaker
from service.tenants import TenantKey

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0
"""How often an unchanged report is rewritten."""
REPORT_TTL_S = 3 * HEARTBEAT_S
"""How long a report outlives its last write: a replica that died stops counting after it."""
RETRY_S = 1.0
"""How soon a report Redis did not take is tried again."""


def replica_name() -> str:
    """This service among the replicas: its host (the pod's name in Kubernetes), its pid, and a
    few random characters, so two services in one process (tests, the demo) are two replicas."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(2)}"


class BreakerBoard:
    """The breakers of this replica that are not closed, and the task that reports them."""

    def __init__(
        self, reports: BreakerReports, replica: str, heartbeat_s: float = HEARTBEAT_S
    ) -> None:
        self._reports = reports
        self._replica = replica
        self._heartbeat_s = heartbeat_s
        self._open: dict[TenantKey, OpenBreaker] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def changed(self, tenant: TenantKey, state: State) -> None:
        """A breaker changed state (called by the breakers, synchronously)."""
        before = self._open.get(tenant)
        if state is State.CLOSED:
            if self._open.pop(tenant, None) is None:
                return
        else:
            since = before.since if before is not None else datetime.now(UTC)
            self._open[tenant] = OpenBreaker(str(state), since)
        self._changed.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sagebridge-breaker-board")

    async def stop(self) -> None:
        """Stop writing, and withdraw the report (it expires anyway if Redis is away)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        try:
            await self._reports.withdraw(self._replica)
        except StateUnavailable:
            log.info("breaker report not withdrawn: Redis unavailable; it expires on its own")

    async def _run(self) -> None:
        wait_s, failing = 0.0, False
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait_s)
            self._changed.clear()
            try:
                await self._reports.publish(self._replica, dict(self._open), REPORT_TTL_S)
            except StateUnavailable as exc:
                if not failing:
                    log.warning("breaker report not written", extra={"error": str(exc)})
                wait_s, failing = RETRY_S, True
            else:
                wait_s, failing = self._heartbeat_s, False
