"""Intake for tests of plain mapping: events whose mapping keeps record images are decided at
once, every record without an image (what the service does when none is stored)."""

from __future__ import annotations

import dataclasses

from service.intake.admit import Admitted, Imaging, Intake, Refused
from service.intake.cloudevents import Headers
from service.intake.images import ImageBook, build


@dataclasses.dataclass(frozen=True, slots=True)
class WithoutImages(Intake):
    def admit(  # type: ignore[override]
        self, value: bytes | None, headers: Headers = (), topic: str | None = None
    ) -> Admitted | Refused:
        decision = Intake.admit(self, value, headers, topic)
        if not isinstance(decision, Imaging):
            return decision
        built = build(decision.mapping, decision.event.data, ImageBook({}), self.max_event_bytes)
        return self.finish(decision, built)
