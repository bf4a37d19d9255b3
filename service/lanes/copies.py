"""Later copies of an event: the same ``event_id`` for the same tenant again while an earlier
copy is still on its way (a producer's retry, a replay).

Begun while the earlier copy is open, a copy would find only that copy's intent and be judged
in doubt — and sent a second time, or answered before the verdict it should repeat. So a later
copy waits here, unbegun, until the earlier copy is concluded (its result in the ledger), and is
then begun like any record: answered from the ledger (SUCCESS for the same data delivered,
"already used" for other data), sent if the earlier one was refused, or looked up if it was
left in doubt. Pure bookkeeping: the caller begins, sends and answers.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LaterCopies(Generic[K, V]):
    """Which events have a copy open, and the later copies waiting for each."""

    def __init__(self) -> None:
        self._waiting: dict[K, list[V] | None] = {}
        """A key is here while a copy of its event is open; its list, the copies after it
        (``None`` until one arrives: most events never have a later copy, and every event
        passes here)."""

    def open_or_wait(self, key: K, copy: V) -> bool:
        """``True`` if ``copy`` is the only open copy of its event (go on with it); otherwise
        it waits for the open one's :meth:`conclude`."""
        if key not in self._waiting:
            self._waiting[key] = None
            return True
        waiting = self._waiting[key]
        if waiting is None:
            self._waiting[key] = [copy]
        else:
            waiting.append(copy)
        return False

    def conclude(self, key: K) -> list[V]:
        """The open copy of ``key``'s event is concluded: the copies that waited for it, in
        arrival order, for the caller to take in again (the first of them opens the event)."""
        return self._waiting.pop(key, None) or []

    def withdraw(self, unwanted: Callable[[V], bool]) -> list[V]:
        """Give up the waiting copies that are ``unwanted`` (their partition was revoked)."""
        dropped: list[V] = []
        for waiting in self._waiting.values():
            if waiting:
                dropped += [copy for copy in waiting if unwanted(copy)]
                waiting[:] = [copy for copy in waiting if not unwanted(copy)]
        return dropped

    def __len__(self) -> int:
        """Copies waiting."""
        return sum(len(waiting) for waiting in self._waiting.values() if waiting)
