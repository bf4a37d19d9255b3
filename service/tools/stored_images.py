"""Stored record images for ``sagebridge validate``, read-only and synchronous.

``validate`` is a plain loop over lines; this gives it a function that reads images from Redis
on a private event loop, and answers ``None`` (no images) once Redis does not answer within two
seconds, instead of failing the check of a file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from service.config import Settings
from service.errors import ImagesUnavailable
from service.intake.image_rules import Image, ImageKey
from service.state.client import connect as connect_redis
from service.state.images import ImageStore
from service.tools.validate import ImageReader


def stored_images(settings: Settings) -> ImageReader:
    """A reader of ``settings``' Redis; its connection lives as long as the process."""
    loop = asyncio.new_event_loop()
    redis = connect_redis(settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    store = ImageStore(redis, settings.redis_prefix, settings.image_ttl_s)

    def read(keys: Sequence[ImageKey]) -> dict[ImageKey, Image | None] | None:
        try:
            return loop.run_until_complete(store.look(keys))
        except ImagesUnavailable:
            return None

    return read
