"""Which partition a keyed message goes to: Kafka's default rule, murmur2 of the key.

Replies are keyed like their events and must land where every Kafka client would put that key
(Java's ``murmur2(key) & 0x7fffffff % partitions``), so a consumer of the reply topic sees one
key's replies in one partition. aiokafka computes the same hash byte by byte in Python; reading
the key as little-endian words in one ``struct`` call costs about half as much (figure in
bench/RESULTS.md), and the publisher hashes every reply and dead letter.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_WORDS: dict[int, struct.Struct] = {}
_WORDS_CACHED_UP_TO = 256
"""Key lengths whose word reader is kept. Keys come from producers, so caching every length
seen would let them grow this table without bound; longer keys build theirs each time."""


def murmur2(data: bytes) -> int:
    """MurmurHash2 as Kafka's Java client computes it (seed ``0x9747b28c``), unsigned."""
    length = len(data)
    words = _WORDS.get(length)
    if words is None:
        words = struct.Struct(f"<{length // 4}I")
        if length <= _WORDS_CACHED_UP_TO:
            _WORDS[length] = words
    h = 0x9747B28C ^ length
    for word in words.unpack_from(data):
        k = (word * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        end = length & ~3
        if tail == 3:
            h ^= data[end + 2] << 16
        if tail >= 2:
            h ^= data[end + 1] << 8
        h = ((h ^ data[end]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def partition_for(key: bytes | None, partitions: Sequence[int]) -> int:
    """The partition of ``key`` among ``partitions`` (sorted); a random one without a key."""
    if len(partitions) == 1:
        return partitions[0]  # where any key goes; skips the hash (reply topics often have one)
    if key is None:
        return random.choice(partitions)
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]


class Murmur2Partitioner:
    """aiokafka's ``partitioner`` interface with the faster hash, so the producer's own
    ``send`` places keys exactly as :func:`partition_for` does."""

    def __call__(
        self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
    ) -> int:
        if key is None and available:
            return random.choice(available)
        return partition_for(key, all_partitions)
