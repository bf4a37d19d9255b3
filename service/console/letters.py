"""The dead letters as the console shows them: listed and counted as ``dlt list`` has them,
one found by its place, replayed as ``dlt replay`` does."""

from __future__ import annotations

import io
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

from service.config import Settings
from service.console.reading import read_topic
from service.tools.dead_letters import DeadLetter, LetterFilter
from service.tools.dlt_list import Listing
from service.tools.reach import unreachable
from service.tools.replay import replay_dead_letters

MAX_AUDITED_IDS = 1000
"""Most event_ids a replay's audit record names."""
_REPLAYED = re.compile(r"^replayed (\d+) dead letter\(s\)", re.MULTILINE)


class Letters:
    """Reads and replays of the dead-letter topic."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def listing(self, chosen: LetterFilter, limit: int) -> Listing:
        """Counts of the matching letters and the newest ``limit``, as ``dlt list`` has them."""
        listing = Listing(limit)
        async with unreachable("dead letters", self._settings):
            async for letter in read_topic(self._settings, self._settings.dlt_topic):
                if chosen.matches(letter):
                    listing.add(letter)
        return listing

    async def find(self, partition: int, offset: int) -> DeadLetter | None:
        async with unreachable("dead letter", self._settings):
            async for letter in read_topic(self._settings, self._settings.dlt_topic):
                if (letter.partition, letter.offset) == (partition, offset):
                    return letter
        return None

    async def replay(self, chosen: LetterFilter) -> tuple[int, tuple[str, ...]]:
        """``dlt replay`` with these filters: how many letters this call replayed (a letter
        replayed before, from any tab or terminal, is not counted or sent again), and the
        event_ids the filters matched (the newest :data:`MAX_AUDITED_IDS`), for the audit."""
        matched = await self.listing(chosen, MAX_AUDITED_IDS)
        ids = tuple(sorted({letter.event_id for letter in matched.newest if letter.event_id}))
        out = io.StringIO()
        await replay_dead_letters(self._settings, letters=chosen, out=out)
        counted = _REPLAYED.findall(out.getvalue())
        return (int(counted[-1]) if counted else 0), ids

    async def by_stage(self, since: timedelta) -> dict[str, Counter[str]]:
        """Per tenant, its dead letters by stage over the last ``since``."""
        counts: dict[str, Counter[str]] = {}
        chosen = LetterFilter(since=datetime.now(UTC) - since)
        async with unreachable("dead letters", self._settings):
            async for letter in read_topic(self._settings, self._settings.dlt_topic):
                if chosen.matches(letter):
                    counts.setdefault(letter.tenant, Counter())[letter.stage] += 1
        return counts

    async def of_event(self, event_id: str) -> list[DeadLetter]:
        """The dead letters of ``event_id`` (the caller says what an unreachable Kafka is)."""
        return [
            letter
            async for letter in read_topic(self._settings, self._settings.dlt_topic)
            if letter.event_id == event_id
        ]
