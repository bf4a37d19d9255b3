"""``sagebridge dlt list``: what is on the dead-letter topic, grouped the way operators act on it.

Counts by stage, tenant and type (the stage says what to do: docs/operating.md, "Dead letters"),
then the newest letters. It reads the topic without a consumer group
(:mod:`service.tools.dead_letter_reader`), so listing changes nothing for anyone.
"""

from __future__ import annotations

import heapq
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

import orjson

from service.config import Settings
from service.tools.dead_letter_reader import DeadLetterReader
from service.tools.dead_letters import DeadLetter, LetterFilter, iso
from service.tools.reach import unreachable

DEFAULT_LIMIT = 20


@dataclass
class Listing:
    """Counts of every matching letter, and the newest ``limit`` of them (kept as they come,
    so a long topic is never held in memory)."""

    limit: int
    stages: Counter[str] = field(default_factory=Counter)
    tenants: Counter[str] = field(default_factory=Counter)
    types: Counter[str] = field(default_factory=Counter)
    _newest: list[tuple[tuple[float, int, int], DeadLetter]] = field(default_factory=list)

    def add(self, letter: DeadLetter) -> None:
        self.stages[letter.stage] += 1
        self.tenants[letter.tenant] += 1
        self.types[letter.type] += 1
        if self.limit <= 0:
            return
        entry = ((letter.time.timestamp(), letter.partition, letter.offset), letter)
        if len(self._newest) < self.limit:
            heapq.heappush(self._newest, entry)
        elif entry[0] > self._newest[0][0]:
            heapq.heapreplace(self._newest, entry)

    @property
    def newest(self) -> list[DeadLetter]:
        """Newest first."""
        return [letter for _, letter in sorted(self._newest, key=lambda e: e[0], reverse=True)]

    def as_json(self) -> dict[str, Any]:
        return {
            "counts": {
                "stage": dict(self.stages.most_common()),
                "tenant": dict(self.tenants.most_common()),
                "type": dict(self.types.most_common()),
            },
            "letters": [letter.summary() for letter in self.newest],
        }

    def as_text(self, topic: str) -> list[str]:
        total = sum(self.stages.values())
        lines = [f"{total} dead letter(s) on {topic}"]
        for title, counts in (
            ("stage", self.stages),
            ("tenant", self.tenants),
            ("type", self.types),
        ):
            shown = ", ".join(f"{name} {n}" for name, n in counts.most_common())
            lines.append(f"by {title}: {shown or '-'}")
        if total:
            lines.append(f"newest {len(self._newest)}:")
        for letter in self.newest:
            origin = f"{letter.original_topic}/{letter.original_partition}@{letter.original_offset}"
            lines.append(
                f"{iso(letter.time)}  {letter.stage}  {letter.event_id or '-'}  {origin}  "
                f"{letter.tenant}  {letter.type}  {letter.message}"
            )
        return lines


async def list_dead_letters(
    settings: Settings,
    letters: LetterFilter,
    *,
    limit: int = DEFAULT_LIMIT,
    as_json: bool = False,
    out: TextIO | None = None,
) -> int:
    """Print the listing (0); :class:`ToolError` when Kafka cannot be reached."""
    out = out or sys.stdout
    listing = Listing(limit)
    async with unreachable("dlt list", settings), DeadLetterReader(settings) as reader:
        async for batch in reader.batches():
            for letter in batch:
                if letters.matches(letter):
                    listing.add(letter)
    if as_json:
        out.write(orjson.dumps(listing.as_json()).decode() + "\n")
    else:
        out.write("\n".join(listing.as_text(settings.dlt_topic)) + "\n")
    return 0
