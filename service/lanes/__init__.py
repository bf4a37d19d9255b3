"""Lanes: how validated records reach the Cloud Connector.

``batch`` groups master data into JSON arrays; ``serial`` sends transactions one at a time per
tenant. Both take :class:`Delivery` items and report ``(ticket, Outcome)`` pairs to a sink;
neither knows where records came from (Kafka) or where outcomes go.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from service.answers.outcomes import Outcome
from service.intake.admit import Admitted
from service.tenants import Tenant

T = TypeVar("T")


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
    record: dict[str, Any]
    identity: Hashable | None = None
    event_id: str = ""
    """For the ledger: the serial lane never sends one ``event_id`` twice."""
    attempts: int = field(default=0)
    claim: str = ""
    """The serial lane's token on this record's ledger intent (see :mod:`service.state.ledger`)."""
    withdrawn: bool = False
    """Its partition was revoked while it was being begun: no call is to start for it."""

    @classmethod
    def of(cls, ticket: T, admitted: Admitted) -> Delivery[T]:
        """The delivery of an event intake admitted."""
        return cls(
            ticket,
            admitted.tenant,
            admitted.route.endpoint,
            admitted.event.data,
            identity=admitted.identity,
            event_id=admitted.event.event_id,
        )


Sink = Callable[[Sequence[tuple[T, Outcome]]], None]
"""Receives finished deliveries; must not block (it schedules the publishing)."""
