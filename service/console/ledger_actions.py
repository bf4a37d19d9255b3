"""The ledger as the console shows it: the records in doubt, one event's entry, and the
operator's verdict on one, each through the ``ledger`` command's own functions — the settle
guard of ``ledger resolve`` included, so the page and the command refuse the same verdicts."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime

from service.config import Settings
from service.console.reading import redis_for
from service.state.in_doubt import Intent, intents
from service.tenants import TenantKey
from service.tools import ledger as ledger_tool

NOT_IN_LEDGER = "the ledger does not know it"
"""``ledger show``'s words for an event it has no entry for."""


@dataclass(frozen=True, slots=True)
class Doubt:
    """An intent, and from when ``ledger resolve`` accepts "not delivered" for it."""

    intent: Intent
    not_delivered_from: datetime

    @property
    def last_attempt(self) -> datetime:
        """When its last call began, as the serial lane recorded it; else its last write."""
        at = self.intent.entry.last_attempt_at
        return self.intent.written if at is None else datetime.fromtimestamp(at, UTC)

    @property
    def settled(self) -> bool:
        """Its last call can no longer be stored: "not delivered" is accepted now."""
        return datetime.now(UTC) >= self.not_delivered_from


class LedgerActions:
    """Reads of the ledger and ``ledger resolve``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def in_doubt(self) -> list[Doubt]:
        """Every intent, oldest first, timed as ``ledger show`` times it."""
        async with redis_for(self._settings, "in doubt") as redis:
            found = await intents(
                redis, self._settings.redis_prefix, self._settings.idempotency_retention_s
            )
        accepted = ledger_tool.not_delivered_accepted_from
        return [Doubt(intent, accepted(self._settings, intent.entry)) for intent in found]

    async def resolve(self, event_id: str, tenant: TenantKey, *, delivered: bool) -> str:
        """``ledger resolve``'s verdict and its words; :class:`~service.errors.VerdictRefused`
        when refused (the settle guard among the reasons), with no ``--force``: a person at
        the page waits out the settle period."""
        out = io.StringIO()
        await ledger_tool.resolve(self._settings, event_id, tenant, delivered=delivered, out=out)
        return out.getvalue().strip()

    async def line(self, event_id: str, tenant: TenantKey) -> str:
        """``ledger show``'s line for ``event_id`` under ``tenant``."""
        out = io.StringIO()
        await ledger_tool.show(self._settings, event_id, tenant, out=out)
        return out.getvalue().strip()
