"""Collecting the demo's answers: replies and dead letters against what the feed expects, and a
progress line while they arrive."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, TextIO

import orjson

from service.dev.demo.feed import FeedEvent


@dataclass
class Tally:
    """Replies and dead letters seen so far, against what the feed expects."""

    expected_ids: set[str]
    unidentified: int
    """Events whose value is not JSON: their replies have ``event_id`` null."""
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)
    anonymous: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: set[tuple[bytes | None, bytes | None]] = field(default_factory=set)

    @classmethod
    def expecting(cls, feed: list[FeedEvent]) -> Tally:
        ids = {e.event_id for e in feed if e.event_id is not None}
        return cls(ids, sum(1 for e in feed if e.event_id is None))

    def take_reply(self, value: bytes | None) -> None:
        body = orjson.loads(value) if value else {}
        event_id = body.get("event_id")
        if event_id is None:
            self.anonymous.append(body)
        else:
            # After a rebalance a reply may repeat (SPEC); the first one counts.
            self.replies.setdefault(event_id, body)

    def take_dead_letter(self, headers: dict[str, bytes]) -> None:
        self.dead_letters.add(
            (headers.get("x-original-partition"), headers.get("x-original-offset"))
        )

    @property
    def answered(self) -> int:
        return len(self.replies.keys() & self.expected_ids) + min(
            len(self.anonymous), self.unidentified
        )

    @property
    def total(self) -> int:
        return len(self.expected_ids) + self.unidentified

    def bodies(self) -> list[dict[str, Any]]:
        return [*self.replies.values(), *self.anonymous]

    def errors(self) -> list[dict[str, Any]]:
        return [b for b in self.bodies() if b.get("response") != "SUCCESS"]

    def complete(self) -> bool:
        return self.answered == self.total and len(self.dead_letters) >= len(self.errors())

    def missing(self) -> list[str]:
        return sorted(self.expected_ids - self.replies.keys())


class Progress:
    """Replies received so far: one line redrawn in place on a terminal, a line per quarter in
    a log (CI output must not fill with carriage returns)."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.tty = stream.isatty()
        self.next_quarter = 1
        self.started = time.monotonic()

    def show(self, done: int) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        if self.tty:
            filled = self.WIDTH * done // self.total
            bar = "#" * filled + "." * (self.WIDTH - filled)
            rate = done / elapsed
            self.stream.write(f"\r  replies [{bar}] {done}/{self.total}  {rate:,.0f} events/s ")
            self.stream.flush()
            return
        if self.next_quarter <= 4 and done * 4 >= self.next_quarter * self.total:
            self.stream.write(f"  replies: {done}/{self.total} after {elapsed:.1f}s\n")
            self.stream.flush()
            self.next_quarter = done * 4 // self.total + 1

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


async def collect(
    consumer: Any, dlt_topic: str, tally: Tally, progress: Progress, deadline_s: float
) -> bool:
    """Read replies and dead letters until every event is answered; ``False`` after
    ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while not tally.complete():
        if time.monotonic() > deadline:
            return False
        batches = await consumer.getmany(timeout_ms=200)
        for records in batches.values():
            for record in records:
                if record.topic == dlt_topic:
                    tally.take_dead_letter(dict(record.headers or ()))
                else:
                    tally.take_reply(record.value)
        progress.show(tally.answered)
    return True
