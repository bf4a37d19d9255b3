"""Offsets: which input offsets may be committed.

An offset is committable only when it and every earlier consumed offset of its partition have
been answered (replies and dead letters acknowledged by Kafka). Records finish out of order —
a fast batch overtakes a slow transaction — so this keeps, per partition, the consumed offsets
still open and commits up to the lowest of them. A crash then replays from the first unanswered
record, and nothing is lost.

Each assignment of a partition is a *generation*. When a partition is revoked, the records
still open are either finished (and committed) or given up (*dropped*: the new owner will
answer them); :meth:`OffsetTracker.forget` then ends the generation, and an answer that
arrives later for it is recognisably stale — the new owner answers that record.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

P = TypeVar("P")  # a partition handle (aiokafka's TopicPartition in the service)
P_co = TypeVar("P_co", covariant=True)


class Placed(Protocol[P_co]):
    """Where a record was consumed (the bridge's :class:`~service.answering.Consumed`)."""

    @property
    def partition(self) -> P_co: ...

    @property
    def offset(self) -> int: ...


@dataclass(slots=True)
class _Partition:
    open: deque[int] = field(default_factory=deque)
    done: set[int] = field(default_factory=set)
    dropped: set[int] = field(default_factory=set)
    """Given up unanswered: they block the commit position like any open record."""
    next_offset: int | None = None
    committed: int | None = None

    def move_past_done(self) -> None:
        """Close the answered offsets at the front: the commit position moves up to the
        first record still open."""
        while self.open and self.open[0] in self.done:
            self.done.discard(self.open.popleft())


class OffsetTracker(Generic[P]):
    def __init__(self) -> None:
        self._partitions: dict[P, _Partition] = {}
        self._generations: dict[P, int] = {}

    def consumed(self, partition: P, offset: int) -> None:
        """Record that ``offset`` was handed to processing (offsets arrive in order)."""
        state = self._partitions.get(partition)
        if state is None:  # not setdefault: that would build a _Partition on every call
            state = self._partitions[partition] = _Partition()
        state.open.append(offset)
        state.next_offset = offset + 1

    def generation(self, partition: P) -> int:
        """The current assignment of ``partition`` (see module docstring)."""
        return self._generations.get(partition, 0)

    def dropped(self, partition: P, offset: int) -> None:
        """``offset`` will not be answered here: it stays uncommitted for the next owner."""
        state = self._partitions.get(partition)
        if state is not None:
            state.dropped.add(offset)

    def answered(self, partition: P, offset: int) -> None:
        state = self._partitions.get(partition)
        if state is None:
            return  # partition was revoked meanwhile; its new owner replays it
        state.done.add(offset)
        state.move_past_done()

    def answered_all(self, records: Iterable[Placed[P]]) -> None:
        """:meth:`answered` for each record (its ``partition`` and ``offset``): one call for an
        answered batch, and each partition's open offsets moved past once."""
        touched: list[_Partition] = []
        partition: P | None = None
        state: _Partition | None = None
        for record in records:
            if record.partition is not partition:
                partition = record.partition
                state = self._partitions.get(partition)
                if state is not None:
                    touched.append(state)
            if state is not None:  # else revoked meanwhile; its new owner replays it
                state.done.add(record.offset)
        for state in touched:
            state.move_past_done()

    def committable(self) -> dict[P, int]:
        """Partitions whose commit position moved since :meth:`mark_committed`: ``{p: next}``."""
        ready: dict[P, int] = {}
        for partition, state in self._partitions.items():
            position = state.open[0] if state.open else state.next_offset
            if position is not None and position != state.committed:
                ready[partition] = position
        return ready

    def mark_committed(self, positions: dict[P, int]) -> None:
        for partition, position in positions.items():
            state = self._partitions.get(partition)
            if state is not None:
                state.committed = position

    def pending(self, partitions: set[P] | None = None) -> int:
        """Consumed records still being worked on — neither answered nor dropped — (in
        ``partitions``, or everywhere)."""
        return sum(
            len(state.open) - len(state.done) - len(state.dropped)
            for partition, state in self._partitions.items()
            if partitions is None or partition in partitions
        )

    def forget(self, partitions: set[P]) -> None:
        """Drop revoked partitions and end their generation: their late answers must not move
        anyone's commit, nor be published (the new owner answers those records)."""
        for partition in partitions:
            self._partitions.pop(partition, None)
            self._generations[partition] = self._generations.get(partition, 0) + 1
