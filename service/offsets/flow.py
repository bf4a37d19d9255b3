"""Flow control: how many consumed records may be open (unanswered) before fetching pauses.

Blocking the consumer's handler would stop it polling, and a consumer that does not poll for
``max.poll.interval.ms`` is thrown out of its group. So instead of blocking, the bridge pauses
its partitions when the open count reaches the high watermark and resumes them at the low one —
memory stays bounded while the Connector is slow or down, and the group stays stable.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class FlowControl:
    high: int
    open: int = 0
    paused: bool = False

    @property
    def low(self) -> int:
        return self.high // 2

    def consumed(self, count: int) -> bool:
        """Records were consumed; ``True`` if fetching should pause now."""
        self.open += count
        if not self.paused and self.open >= self.high:
            self.paused = True
            return True
        return False

    def answered(self, count: int) -> bool:
        """Records were answered; ``True`` if fetching should resume now."""
        self.open -= count
        if self.paused and self.open <= self.low:
            self.paused = False
            return True
        return False
