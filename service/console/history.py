"""An event's history: everything the input topics, the replies, the dead letters, the ledger
and the audit topic hold of one ``event_id``, gathered for its page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson

from service.config import Settings
from service.console.audit import Action
from service.console.audit_trail import AuditTrail
from service.console.ledger_actions import NOT_IN_LEDGER, LedgerActions
from service.console.letters import Letters
from service.console.reading import read_topic
from service.errors import ToolError
from service.intake.envelope import Event, parse_event
from service.tenants import TenantDirectory, TenantKey
from service.tools.dead_letters import DeadLetter
from service.tools.reach import unreachable


@dataclass(frozen=True, slots=True)
class Found:
    """A record of some topic that concerns an event (its input, reply, dead letter)."""

    topic: str
    partition: int
    offset: int
    time: datetime
    value: bytes | None


@dataclass(frozen=True, slots=True)
class History:
    event_id: str
    records: list[Found]
    replies: list[Found]
    letters: list[DeadLetter]
    ledger: list[str]
    """``ledger show``'s line for each tenant the event was seen under."""
    actions: list[Action]
    in_ledger: bool

    @property
    def known(self) -> bool:
        """Whether anything at all knows this event_id."""
        return bool(self.records or self.replies or self.letters or self.actions or self.in_ledger)


class Histories:
    """Gathers an event's history from the topics and through the other sources."""

    def __init__(
        self,
        settings: Settings,
        tenants: TenantDirectory,
        letters: Letters,
        ledger: LedgerActions,
        audit: AuditTrail,
    ) -> None:
        self._settings = settings
        self._tenants = tenants
        self._letters = letters
        self._ledger = ledger
        self._audit = audit

    async def replies(self, event_id: str) -> list[Found]:
        """The replies on the default reply topic to ``event_id``."""
        async with unreachable("replies", self._settings):
            return [
                _found(record)
                async for record in read_topic(self._settings, self._settings.reply_topic)
                if _reply_of(record.value) == event_id
            ]

    async def of(self, event_id: str) -> History:
        """Everything the topics, the ledger and the audit topic hold of ``event_id``."""
        records: list[Found] = []
        tenants: set[TenantKey] = set()
        max_bytes = self._settings.max_event_bytes
        async with unreachable("history", self._settings):
            for topic in self._settings.input_topics:
                async for record in read_topic(self._settings, topic):
                    event = parse_event(record.value, max_bytes)
                    if isinstance(event, Event) and event.event_id == event_id:
                        records.append(_found(record))
                        tenants.add(self._tenant_of(event))
            replies = await self.replies(event_id)
            letters = await self._letters.of_event(event_id)
        actions = [a for a in await self._audit.actions() if event_id in a.event_ids]
        tenants |= {
            TenantKey(*a.tenant.split("/", 1)) for a in actions if a.tenant and "/" in a.tenant
        }
        if not tenants and self._tenants.default is not None:
            tenants.add(self._tenants.default.key)
        ledger = [await self._ledger.line(event_id, tenant) for tenant in sorted(tenants)]
        in_ledger = any(NOT_IN_LEDGER not in line for line in ledger)
        return History(event_id, records, replies, letters, ledger, actions, in_ledger)

    def _tenant_of(self, event: Event) -> TenantKey:
        if event.customer and event.company:
            return TenantKey(event.customer, event.company)
        default = self._tenants.default
        if default is None:
            raise ToolError("history: an event names no tenant and no default is configured")
        return default.key


def _found(record: DeadLetter) -> Found:
    return Found(record.topic, record.partition, record.offset, record.time, record.value)


def _reply_of(value: bytes | None) -> str | None:
    try:
        body = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    found = body.get("event_id") if isinstance(body, dict) else None
    return found if isinstance(found, str) else None
