"""The crash-loop breaker's decisions (pure): which record killed the process, and when to stop
taking it in.

A record whose take-in kills the process (an OOM kill in a contract check, a crash in a C
extension) is never answered, so its offset is never committed: the next owner of the partition
replays it and dies the same way, and the partition stops for good. The breaker finds such a
record and answers it ERROR, unread, once it has stopped the service ``limit`` times while
taken in on its own.

It works from *marks*, one per partition, that a process leaves in Redis while it takes records
in (:mod:`service.kafka.crash_guard` writes them, :mod:`service.state.crash_marks` keeps them).
A mark left by another process means that process died, or at least stopped without clearing it:

* a **poll mark** covers a whole poll's records of the partition. It is written before the poll
  is taken in and stays until the next poll (or a second of quiet) replaces it, so the death it
  reports may have come from anything the process was doing meanwhile. It is only a
  :class:`Suspicion`, charged to no record: the next owner takes those records in one at a time;
* an **alone mark** covers one record taken in on its own, with nothing else running: it is
  written and cleared by blocking calls around the record's synchronous take-in. Finding one is
  a :class:`Death`, one counted against that record (and against nothing else).

A record is condemned at ``limit`` deaths of its own. A record that kills the process every
time it is taken in therefore costs ``limit + 1`` process deaths: the first, under a poll mark,
only names the poll. Charging that first death to the record too would save a restart, but a
suspicion's death may have come from anything. A process killed from outside (an OOM under
load, a node lost) during a poll, then again while its successor takes a good record of that
poll in alone, would leave that record one death from a limit of 3; and each next owner takes
it in alone first, so the next unrelated kill may well land there too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

DeathCounts = Mapping[int, Mapping[int, int]]
"""Per offset, per digest of the record's value: deaths counted against that record. The digest
tells apart two records that held the same offset (a topic deleted and created again)."""


@dataclass(frozen=True, slots=True)
class Mark:
    """What a process was taking in when it last wrote its mark for a partition."""

    first: int
    last: int
    alone: bool = False
    """One record, taken in with nothing else running (see the module docstring)."""
    digest: int = 0
    """Of the alone record's value."""


@dataclass(frozen=True, slots=True)
class Death:
    """The process died taking in this record alone: one death is counted against it."""

    offset: int
    digest: int


@dataclass(frozen=True, slots=True)
class Suspicion:
    """A process died while a poll covering ``first..last`` was taken in: take them in alone.
    The death is counted against none of them."""

    first: int
    last: int


@dataclass(frozen=True, slots=True)
class Isolate:
    """Take this record in on its own, under an alone mark."""


@dataclass(frozen=True, slots=True)
class Condemn:
    """Do not take this record in: it has stopped the service ``deaths`` times, each while
    taken in alone."""

    deaths: int


Treatment = Isolate | Condemn | None
"""``None``: take the record in with the rest of its poll."""


def judge(left: Mark, replay_from: int) -> Death | Suspicion | None:
    """What another process's mark says, for an owner whose replay starts at ``replay_from``
    (the partition's committed offset). A mark entirely before it is stale: those records were
    answered and committed, so nobody died taking them in."""
    if left.last < replay_from:
        return None
    if left.alone:
        return Death(left.first, left.digest)
    return Suspicion(max(left.first, replay_from), left.last)


def concerns(first: int, last: int, suspicion: Suspicion | None, deaths: DeathCounts) -> bool:
    """Whether a poll's records ``first..last`` of a partition need any care at all."""
    if suspicion is not None and suspicion.first <= last and first <= suspicion.last:
        return True
    return any(first <= offset <= last for offset in deaths)


def treatment(
    offset: int,
    digest: Callable[[], int],
    suspicion: Suspicion | None,
    deaths: DeathCounts,
    limit: int,
) -> Treatment:
    """How to take in the record at ``offset``. ``digest`` is asked only when deaths were
    counted at that offset (hashing every record would cost the normal path)."""
    counted = 0
    at_offset = deaths.get(offset)
    if at_offset:
        counted = at_offset.get(digest(), 0)
    if counted >= limit:
        return Condemn(counted)
    if counted or (suspicion is not None and suspicion.first <= offset <= suspicion.last):
        return Isolate()
    return None


def condemned_message(deaths: int, topic: str, partition: int, offset: int) -> str:
    """The ERROR reply's and dead letter's message for a condemned record."""
    return (
        f"this record ({topic} partition {partition} offset {offset}) stopped the service "
        f"{deaths} times while it was being taken in on its own (parse, route, contract check); "
        "it was not processed (crash-loop breaker). Replaying the same bytes would stop it again"
    )
