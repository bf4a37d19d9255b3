"""The ledger as the console shows it: the records in doubt, one event's entry, and the
operator's verdict on one, each through the ``ledger`` command's own functions."""

from __future__ import annotations

import io

from service.config import Settings
from service.console.reading import redis_for
from service.state.in_doubt import Intent, intents
from service.tenants import TenantKey
from service.tools import ledger as ledger_tool

NOT_IN_LEDGER = "the ledger does not know it"
"""``ledger show``'s words for an event it has no entry for."""


class LedgerActions:
    """Reads of the ledger and ``ledger resolve``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def in_doubt(self) -> list[Intent]:
        async with redis_for(self._settings, "in doubt") as redis:
            return await intents(
                redis, self._settings.redis_prefix, self._settings.idempotency_retention_s
            )

    async def resolve(self, event_id: str, tenant: TenantKey, *, delivered: bool) -> str:
        """``ledger resolve``'s verdict and its words; :class:`ToolError` when refused.

        SETTLE GUARD (issue 22): ``ledger resolve --not-delivered`` is to be refused until
        SAGEBRIDGE_SETTLE_AFTER_UNKNOWN_S after the record's last attempt. That check belongs
        to :func:`service.tools.ledger.resolve`; once it has it, this call inherits it (pass
        ``force`` through here if the console is to offer an override). Nothing to add elsewhere.
        """
        out = io.StringIO()
        await ledger_tool.resolve(self._settings, event_id, tenant, delivered=delivered, out=out)
        return out.getvalue().strip()

    async def line(self, event_id: str, tenant: TenantKey) -> str:
        """``ledger show``'s line for ``event_id`` under ``tenant``."""
        out = io.StringIO()
        await ledger_tool.show(self._settings, event_id, tenant, out=out)
        return out.getvalue().strip()
