"""Handing on together what was handed in during one turn of the event loop."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class Gathered(Generic[V]):
    """Items added during one turn of the event loop reach ``handle`` together, in the order
    they came, from work that ``start`` runs (it begins on the loop's next turn). A busy
    service ends several calls in one turn; one step for all of them costs a fraction of one
    each when a step is a round trip."""

    def __init__(
        self,
        handle: Callable[[list[V]], Coroutine[Any, Any, None]],
        start: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self._handle = handle
        self._start = start
        self._items: list[V] = []
        self._started = False
        """Whether started work will take :attr:`_items`."""

    def add(self, items: Iterable[V]) -> None:
        self._items += items
        if not self._started:
            self._started = True
            self._start(self._hand_on())

    async def _hand_on(self) -> None:
        items, self._items, self._started = self._items, [], False
        await self._handle(items)
