"""Record images in Redis: ``<prefix>:image:<mapping>:<record id>``, one JSON string each.

Each image is stored with the epoch it was written under (:mod:`service.state.epoch`) and read
back only while Redis still holds that epoch: after a loss of data (a restart without
persistence, a failover to a replica that lagged) the epoch is new, so an image that survived
or came back from an older copy is not used. That is the ledger's rule: a Redis that lost data
means no image, and an UPDATE that needs one is refused rather than built from a stale one. No
epoch in Redis (nothing has established one since the loss) also means no image, and nothing
is written.

Every write sets the TTL (``SAGEBRIDGE_IMAGE_TTL_S``): an image not touched for that long
goes, so a producer inventing record ids cannot grow Redis for ever; the size of each is
bounded before it gets here (``SAGEBRIDGE_IMAGE_MAX_BYTES``, :mod:`service.intake.images`).
Redis's own errors become :class:`~service.errors.ImagesUnavailable`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.errors import ImagesUnavailable
from service.intake.image_rules import Image, ImageKey
from service.state.keys import key


def encode(image: Image, epoch: str) -> bytes:
    return orjson.dumps(
        {
            "epoch": epoch,
            "order": list(image.order) if image.order is not None else None,
            "fields": image.fields,
            "unknown": sorted(image.unknown),
        }
    )


def decode(raw: bytes | None, epoch: str | None) -> Image | None:
    """The image stored as ``raw``, if it was written under ``epoch``."""
    if raw is None or epoch is None:
        return None
    try:
        stored = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(stored, dict) or stored.get("epoch") != epoch:
        return None
    order = stored.get("order")
    fields = stored.get("fields")
    if not isinstance(fields, dict):
        return None
    return Image(
        fields,
        tuple(order) if isinstance(order, list) else None,
        frozenset(u for u in stored.get("unknown") or () if isinstance(u, str)),
    )


# KEYS: the images. ARGV: ttl s, "1" to keep existing images, then one value per key ("" to
# delete). One command for a whole batch: redis-py's per-command pipeline costs dominate
# otherwise (bench/RESULTS.md, seed). Returns how many images were written.
_WRITE = """
local written = 0
for i, name in ipairs(KEYS) do
  local value = ARGV[i + 2]
  if value == '' then
    redis.call('DEL', name)
  elseif ARGV[2] == '1' then
    if redis.call('SET', name, value, 'EX', ARGV[1], 'NX') then
      written = written + 1
    end
  else
    redis.call('SET', name, value, 'EX', ARGV[1])
    written = written + 1
  end
end
return written
"""


class ImageStore:
    """Images under the epoch, one JSON string each; many keys per script, so (like the
    ledger) it expects a standalone Redis or a proxy that keeps them together."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        ttl_s: int,
        *,
        wait_for_epoch: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``wait_for_epoch``: in the service, the epoch watch's ``ready``. Until this process
        has established the epoch (a fresh deployment's first, or a loss declared), Redis may
        hold none yet, and an image written or read then would be judged by nothing. The
        tools read the epoch Redis holds, and need no wait."""
        self._wait_for_epoch = wait_for_epoch
        self._redis = redis
        self._write = redis.register_script(_WRITE)
        self._prefix = prefix
        self._epoch_key = key(prefix, "epoch")
        self.ttl_s = ttl_s

    def key(self, image: ImageKey) -> str:
        return key(self._prefix, "image", image[0], image[1])

    async def read_many(
        self, keys: Sequence[ImageKey]
    ) -> tuple[str | None, dict[ImageKey, Image | None]]:
        """The epoch in Redis and each image valid under it, in one round trip."""
        if self._wait_for_epoch is not None:
            await self._wait_for_epoch()
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(self._epoch_key)
                pipe.mget([self.key(k) for k in keys])
                epoch_raw, raws = await pipe.execute()
        except RedisError as exc:
            raise ImagesUnavailable(type(exc).__name__) from None
        epoch = epoch_raw.decode() if isinstance(epoch_raw, bytes) else epoch_raw
        return epoch, {k: decode(raw, epoch) for k, raw in zip(keys, raws, strict=True)}

    async def write_many(
        self, epoch: str, changed: Mapping[ImageKey, Image | None], *, only_new: bool = False
    ) -> int:
        """Write ``changed`` (``None``: delete) under ``epoch``, in one command; with
        ``only_new`` an existing image is kept. Returns how many were written."""
        if not changed:
            return 0
        values = [b"" if image is None else encode(image, epoch) for image in changed.values()]
        try:
            written = await self._write(
                keys=[self.key(k) for k in changed],
                args=[self.ttl_s, "1" if only_new else "0", *values],
            )
        except RedisError as exc:
            raise ImagesUnavailable(type(exc).__name__) from None
        return int(written)

    async def epoch(self) -> str | None:
        """The epoch in Redis now (``None``: none established)."""
        try:
            found = await self._redis.get(self._epoch_key)
        except RedisError as exc:
            raise ImagesUnavailable(type(exc).__name__) from None
        return found.decode() if isinstance(found, bytes) else found

    async def look(self, keys: Iterable[ImageKey]) -> dict[ImageKey, Image | None]:
        """Read only (``validate --explain``)."""
        _, found = await self.read_many(list(keys))
        return found
