"""Flow control: how many consumed records, and how many of their bytes, may be open
(unanswered) before fetching pauses.

Blocking the consumer's handler would stop it polling, and a consumer that does not poll for
``max.poll.interval.ms`` is thrown out of its group. So instead of blocking, the bridge pauses
its partitions when either open count reaches its high watermark and resumes them when both are
back at their low ones (half) — memory stays bounded while the Connector is slow or down, and
the group stays stable. Counting records alone is not enough: 5,000 journals of up to 1 MB
each would be 5 GB; counting the value bytes of open records bounds what they hold.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class FlowControl:
    high: int
    high_bytes: int | None = None
    """``None``: records are counted, not bytes."""
    open: int = 0
    open_bytes: int = 0
    paused: bool = False

    @property
    def low(self) -> int:
        return self.high // 2

    def _over(self) -> bool:
        return self.open >= self.high or (
            self.high_bytes is not None and self.open_bytes >= self.high_bytes
        )

    def _under(self) -> bool:
        return self.open <= self.low and (
            self.high_bytes is None or self.open_bytes <= self.high_bytes // 2
        )

    def consumed(self, count: int, size: int = 0) -> bool:
        """Records (of ``size`` value bytes in all) were consumed; ``True`` if fetching should
        pause now."""
        self.open += count
        self.open_bytes += size
        if not self.paused and self._over():
            self.paused = True
            return True
        return False

    def answered(self, count: int, size: int = 0) -> bool:
        """Records (of ``size`` value bytes in all) were answered; ``True`` if fetching should
        resume now."""
        self.open -= count
        self.open_bytes -= size
        if self.paused and self._under():
            self.paused = False
            return True
        return False
