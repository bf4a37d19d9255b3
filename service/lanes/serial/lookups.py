"""In doubt, then looked up: Sage itself says whether a transactional record in doubt was stored.

A record is in doubt when a call carried it and no verdict came back (a timeout, a 502 after
storing, a crash mid-call, or Redis losing the ledger after it may have been sent). A serial
route that names a ``lookup`` (key element -> query parameter of the Connector's list GET) has
such a record looked up in Sage once no call can still be running for its company — after the
settle period, or under a quiet hold:

* **found** with every value we sent: the call stored it; answered SUCCESS ("found in Sage")
  and recorded as delivered;
* **absent**: it was not stored; it stays ``unknown_outcome`` for a person, the answer naming
  when Sage was checked — or, with the route's ``resend_if_absent: true``, it is sent again;
* a row with other values, or a look-up that failed: a person decides, as before.

A look-up is decisive only when no call of the company can still be running, so it is made only
then. The same look-up shortens the wait after a crash: the records the earlier holder's call
carried (:mod:`service.state.carried`), all found in Sage, mean that call has ended.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from service.answers.outcomes import Outcome, Stage
from service.connector.lookup import Sighting
from service.errors import StateUnavailable
from service.intake.routes import Lane, RouteTable
from service.state.carried import Carried
from service.state.locks import Lease
from service.tenants import Tenant, TenantKey

log = logging.getLogger("service.lanes.serial")

FOUND_MESSAGE = "found in Sage"

Sight = Callable[[Tenant, str, Mapping[str, str], Mapping[str, Any]], Awaitable[Sighting]]
"""Look one record up: tenant, endpoint, the route's lookup, the record."""


@dataclass(frozen=True, slots=True)
class LookupRule:
    """A serial route's look-up (``contracts/routes.yaml``)."""

    lookup: Mapping[str, str]
    """Key element -> query parameter of the endpoint's list GET."""
    resend_if_absent: bool = False
    """A record in doubt that Sage does not have is sent again."""


def lookup_rules(routes: RouteTable) -> dict[str, LookupRule]:
    """The look-up of each serial route that names one (``lookup``, ``resend_if_absent``)."""
    return {
        route.endpoint: LookupRule(route.lookup, route.resend_if_absent)
        for route in routes.routes.values()
        if route.lane is Lane.SERIAL and route.lookup is not None
    }


class CarriedNotes(Protocol):
    """Where each call's records are noted before it starts (:class:`~service.state.carried.
    CarriedCalls`); raises :class:`~service.errors.StateUnavailable` when its store fails."""

    async def note(
        self, tenant: TenantKey, fence: int, endpoint: str, encoded: Sequence[bytes]
    ) -> None: ...

    async def of_running_call(self, tenant: TenantKey) -> Carried | None: ...


class Lookups:
    """The serial routes' look-ups, the Connector's list GET and the notes of calls carried."""

    def __init__(self, rules: Mapping[str, LookupRule], sight: Sight, notes: CarriedNotes) -> None:
        self._rules = dict(rules)
        self._sight = sight
        self._notes = notes

    def rule(self, endpoint: str) -> LookupRule | None:
        return self._rules.get(endpoint)

    async def sight(self, tenant: Tenant, endpoint: str, record: Mapping[str, Any]) -> Sighting:
        """What Sage shows of ``record``; only for an endpoint with a rule."""
        rule = self._rules[endpoint]
        try:
            return await self._sight(tenant, endpoint, rule.lookup, record)
        except Exception:  # a look-up is a help, never a reason to lose the record
            log.exception("look-up in Sage failed", extra={"endpoint": endpoint})
            return Sighting.FAILED

    async def note(self, lease: Lease, endpoint: str, encoded: Sequence[bytes]) -> bool:
        """Note what the next call under ``lease`` carries; ``False`` if that could not be
        written (then the call must not start: an older note of the same holder would name a
        call that has ended)."""
        if not self._rules:
            return True  # nothing is ever looked up: no note is read
        try:
            await self._notes.note(lease.tenant, lease.fence, endpoint, encoded)
        except StateUnavailable:
            log.warning(
                "Redis unreachable: what the call carries could not be noted; not calling",
                extra={"tenant": lease.tenant},
            )
            return False
        return True

    async def earlier_call_ended(self, tenant: Tenant) -> bool:
        """Whether the call an earlier holder may still be running has ended: every record it
        carried is found in Sage. ``False`` whenever that cannot be shown."""
        if not self._rules:
            return False
        try:
            carried = await self._notes.of_running_call(tenant.key)
        except StateUnavailable:
            return False
        if carried is None or carried.endpoint not in self._rules:
            return False
        for record in carried.records:
            if await self.sight(tenant, carried.endpoint, record) is not Sighting.FOUND:
                return False
        return True


def found_in_sage(attempts: int) -> Outcome:
    """SUCCESS for a record in doubt that the look-up found with every value sent."""
    return Outcome(message=FOUND_MESSAGE, attempts=attempts)


def still_in_doubt(reason: str, seen: Sighting, attempts: int) -> Outcome:
    """``unknown_outcome`` after a look-up that did not settle it; says when Sage was checked."""
    checked = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    found = {
        Sighting.ABSENT: "not found in Sage",
        Sighting.DIFFERENT: "Sage holds a record with this key but other values",
        Sighting.FAILED: "the look-up in Sage failed",
        Sighting.FOUND: "found in Sage",
    }[seen]
    return Outcome.failure(
        Stage.UNKNOWN_OUTCOME, f"{reason}; {found} when checked at {checked}", attempts=attempts
    )


class _NoNotes:
    """The notes of a lane with no look-ups: never written, never read."""

    async def note(
        self, tenant: TenantKey, fence: int, endpoint: str, encoded: Sequence[bytes]
    ) -> None:
        return None

    async def of_running_call(self, tenant: TenantKey) -> Carried | None:
        return None


async def _never_sighted(
    tenant: Tenant, endpoint: str, lookup: Mapping[str, str], record: Mapping[str, Any]
) -> Sighting:
    return Sighting.FAILED


def no_lookups() -> Lookups:
    """No serial route looks anything up."""
    return Lookups({}, _never_sighted, _NoNotes())
