"""What operators see when calls to a tenant stop or start: a gauge and one log line, and for
the breaker this replica's report to the console (:mod:`service.ops.breaker_board`).

Two things stop a tenant's calls while its records wait: its circuit breaker (the Connector
failing, or refusing the token) and an operator's pause. Both are reported here, per tenant.
"""

from __future__ import annotations

import logging

from service.lanes.breaker import State
from service.ops.breaker_board import BreakerBoard
from service.ops.metrics import Metrics
from service.tenants import TenantKey

log = logging.getLogger(__name__)


class TenantStates:
    def __init__(self, metrics: Metrics, board: BreakerBoard) -> None:
        self._metrics = metrics
        self._board = board

    def breaker_changed(self, tenant: TenantKey, state: State) -> None:
        self._metrics.breaker_open.labels(*tenant).set(0 if state is State.CLOSED else 1)
        self._board.changed(tenant, state)
        level = logging.INFO if state is State.CLOSED else logging.WARNING
        log.log(
            level,
            "connector breaker " + str(state),
            extra={"customer": tenant.customer, "company": tenant.company},
        )

    def pause_changed(self, tenant: TenantKey, paused: bool) -> None:
        self._metrics.tenant_paused.labels(*tenant).set(1 if paused else 0)
        log.warning(
            "tenant paused by an operator: no calls until it is resumed"
            if paused
            else "tenant resumed by an operator",
            extra={"customer": tenant.customer, "company": tenant.company},
        )
