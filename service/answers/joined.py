"""One answer for an event that became several Sage records.

A Salesforce change event may name several records (``recordIds``: the same change made to
each, in one transaction). Each becomes its own Sage record and travels its lane on its own,
under the event id ``<event_id>/<record id>`` so the ledger keeps each one's delivery apart.
The event still gets exactly one reply, once every part is answered: SUCCESS if all landed,
otherwise an ERROR naming each record that failed. Its offset is answered only then, so a crash
before that replays the whole event, and the parts that had landed are answered from the ledger
without a second call.

If the partition is revoked while parts are open, the event is given up as a whole (its new
owner answers it) and late answers of its parts are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from service.answers.outcomes import Outcome, Stage

T = TypeVar("T")


MAX_LISTED = 10
"""Failed records a joint message names; the rest are counted (the reply's size is bounded)."""


@dataclass(eq=False, slots=True)
class Joint(Generic[T]):
    """The parts of one event, and the ticket of the event itself (``whole``)."""

    whole: T
    names: tuple[str, ...]
    """Each part's record id, for the message of a failure."""
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    given_up: bool = False

    def note(self, part: int, outcome: Outcome) -> Outcome | None:
        """Note one part's outcome; the event's outcome once every part has one."""
        if self.given_up or part in self.outcomes:
            return None
        self.outcomes[part] = outcome
        if len(self.outcomes) < len(self.names):
            return None
        return self._combined()

    def give_up(self) -> bool:
        """Whether the event is to be dropped now (the first time a part is dropped)."""
        if self.given_up or len(self.outcomes) == len(self.names):
            return False
        self.given_up = True
        return True

    def _combined(self) -> Outcome:
        attempts = max(o.attempts for o in self.outcomes.values())
        failed = [(self.names[i], o) for i, o in sorted(self.outcomes.items()) if not o.ok]
        if not failed:
            return Outcome.success(attempts)
        # An unknown outcome outranks a refusal: it is the one an operator must look into.
        unknown = [o for _, o in failed if o.stage is Stage.UNKNOWN_OUTCOME]
        first = unknown[0] if unknown else failed[0][1]
        assert first.stage is not None
        message = f"{len(failed)} of {len(self.names)} records not delivered: " + "; ".join(
            f"{name}: {outcome.message}" for name, outcome in failed[:MAX_LISTED]
        )
        if len(failed) > MAX_LISTED:
            message += f"; and {len(failed) - MAX_LISTED} more"
        errors = [e for _, outcome in failed for e in outcome.errors]
        return Outcome.failure(first.stage, message, errors, attempts)


@dataclass(frozen=True, slots=True)
class Part(Generic[T]):
    """A ticket's place in its event: which joint, which record."""

    joint: Joint[T]
    index: int
