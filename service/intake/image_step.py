"""The image step: between intake and the lanes, for events whose mapping keeps record images.

Intake is pure, so it does not read images: it stops such an event at
:class:`~service.intake.admit.Imaging`, with the image keys it needs. The bridge hands all of a
poll's stopped events here at once: their images are read in one round trip, each event is
merged and built in poll order (two changes to one record in a poll see each other), the changed
images are written in one more round trip, and only then do the events go on to their lanes —
so an image is never behind a record that was sent.

The store is handed in (:class:`ImageStore`, Redis in :mod:`service.state.images`). If it
cannot be read, events are built without images (a CREATE is sent, an UPDATE that needs an
image is refused with the seed hint). An image that missed a change must never be used, so the
images of every record changed while the store could not be read or written are remembered and
deleted at the next write that succeeds (until then, this process keeps them in memory).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from service.errors import ImagesUnavailable
from service.intake.admit import Admitted, Imaging, Intake, Refused
from service.intake.image_rules import Image, ImageKey
from service.intake.images import ImageBook, build

log = logging.getLogger(__name__)


class ImageStore(Protocol):
    async def read_many(
        self, keys: Sequence[ImageKey]
    ) -> tuple[str | None, dict[ImageKey, Image | None]]: ...

    async def write_many(
        self, epoch: str, changed: Mapping[ImageKey, Image | None], *, only_new: bool = False
    ) -> int: ...


class ImageStep:
    def __init__(self, intake: Intake, store: ImageStore, max_bytes: int) -> None:
        self._intake = intake
        self._store = store
        self._max_bytes = max_bytes
        self._unwritten: dict[ImageKey, None] = {}
        """Images a failed write should have changed: deleted at the next write that works."""

    async def resolve(self, stopped: Sequence[Imaging]) -> list[Admitted | Refused]:
        """Each stopped event's decision, in order, with its records' images read, merged and
        written."""
        keys = list(dict.fromkeys(k for event in stopped for k in event.keys))
        try:
            epoch, found = await self._store.read_many(keys)
        except ImagesUnavailable as exc:
            log.warning(
                "record images unavailable: UPDATEs that need one are refused",
                extra={"error": str(exc)},
            )
            epoch, found = None, {}
        book = ImageBook(found, available=epoch is not None)
        decisions = [
            self._intake.finish(
                event, build(event.mapping, event.event.data, book, self._max_bytes)
            )
            for event in stopped
        ]
        changed: dict[ImageKey, Image | None] = {**self._unwritten, **book.changed}
        if not changed:
            return decisions
        try:
            if epoch is None:
                raise ImagesUnavailable("no epoch in Redis")
            await self._store.write_many(epoch, changed)
            self._unwritten.clear()
        except ImagesUnavailable as exc:
            self._unwritten.update(dict.fromkeys(changed))
            log.warning(
                "record images not written: they will be dropped once Redis answers",
                extra={"error": str(exc), "images": len(changed)},
            )
        return decisions
