"""The console's one door to Kafka and Redis: every read and action goes through the modules the
operators' commands use (``service/tools``, ``service/state``), called from the sources gathered
here only, so when those commands change (the settle guard on ``ledger resolve``, say) these are
the files to follow.

Failures arrive as :class:`~service.errors.ToolError` with the commands' own one-line words
(:func:`service.tools.reach.unreachable`); the pages show that line, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.config import Settings
from service.console.audit_trail import AuditTrail
from service.console.history import Histories
from service.console.ledger_actions import LedgerActions
from service.console.letters import Letters
from service.console.tenant_actions import TenantActions
from service.tenants import TenantDirectory


@dataclass(frozen=True, slots=True)
class Sources:
    """Reads and actions on the service's Kafka topics and Redis state, for one console, one
    object per thing an operator looks at."""

    letters: Letters
    ledger: LedgerActions
    tenants: TenantActions
    audit: AuditTrail
    history: Histories

    @classmethod
    def of(cls, settings: Settings, tenants: TenantDirectory, audit_topic: str) -> Sources:
        """Every source of one console, reading ``settings``' topics and Redis."""
        letters, ledger = Letters(settings), LedgerActions(settings)
        audit = AuditTrail(settings, audit_topic)
        return cls(
            letters,
            ledger,
            TenantActions(settings, tenants),
            audit,
            Histories(settings, tenants, letters, ledger, audit),
        )
