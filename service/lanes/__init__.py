"""Lanes: how validated records reach the Cloud Connector.

``batch`` groups master data into JSON arrays; ``serial`` sends transactions one at a time per
tenant. Both take :class:`Delivery` items and report ``(ticket, Outcome)`` pairs to a sink;
neither knows where records came from (Kafka) or where outcomes go.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson

from service.answers.outcomes import Outcome
from service.intake.admit import Admitted
from service.ops.traces import RecordTrace
from service.tenants import Tenant

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True, eq=False)
class Delivery(Generic[T]):
    """One record on its way to ``endpoint`` for ``tenant``.

    ``identity`` names the Sage row it writes: two deliveries with the same identity are never
    in flight at once, so updates to one record keep their order. ``ticket`` is the caller's
    handle, returned untouched with the outcome.
    """

    ticket: T
    tenant: Tenant
    endpoint: str
    source: dict[str, Any] | bytes
    """The record, parsed, or packed as JSON (see :meth:`of`); read it as :attr:`record`."""
    identity: Hashable | None = None
    event_id: str = ""
    """For the ledger: the serial lane never sends one ``event_id`` twice."""
    attempts: int = field(default=0)
    claim: str = ""
    """The serial lane's token on this record's ledger intent (see :mod:`service.state.ledger`)."""
    withdrawn: bool = False
    """Its partition was revoked while it was being begun: no call is to start for it."""
    trace: RecordTrace | None = None
    """The trace its event continues (:mod:`service.ops.traces`); ``None`` when untraced."""

    @property
    def record(self) -> dict[str, Any]:
        """The record to send (parsed afresh on each read when packed)."""
        if isinstance(self.source, bytes):
            parsed: dict[str, Any] = orjson.loads(self.source)
            return parsed
        return self.source

    @classmethod
    def of(
        cls,
        ticket: T,
        admitted: Admitted,
        trace: RecordTrace | None = None,
        *,
        packed: bool = False,
    ) -> Delivery[T]:
        """The delivery of an event intake admitted. ``packed`` keeps the record as compact
        JSON instead of parsed objects, about a quarter of the memory: for records that may
        wait long in a queue (a paused or settling company), whose few reads cost little next
        to their call. A record JSON cannot hold stays parsed."""
        source: dict[str, Any] | bytes = admitted.event.data
        if packed:
            with suppress(orjson.JSONEncodeError):
                source = orjson.dumps(source)
        # Every field positional: keywords cost a dataclass's ``__init__`` half as much again,
        # and every master-data record passes here.
        return cls(
            ticket,
            admitted.tenant,
            admitted.route.endpoint,
            source,
            admitted.identity,
            admitted.event.event_id,
            0,
            "",
            False,
            trace,
        )

    async def traced(self, work: Awaitable[R]) -> R:
        """Await ``work`` inside this delivery's trace, so the HTTP client's instrumentation
        makes its call span a child of the event's."""
        if self.trace is None:
            return await work
        with self.trace.current():
            return await work


CallSpan = Callable[[str, Sequence[RecordTrace]], AbstractContextManager[object]]
"""Opens the span of one Connector call to an endpoint for the traced records it carries
(:meth:`service.ops.traces.Tracing.call_span`)."""


def untraced(endpoint: str, records: Sequence[RecordTrace]) -> AbstractContextManager[object]:
    """The :data:`CallSpan` of a service that does not trace."""
    return nullcontext()


Sink = Callable[[Sequence[tuple[T, Outcome]]], None]
"""Receives finished deliveries; must not block (it schedules the publishing)."""
