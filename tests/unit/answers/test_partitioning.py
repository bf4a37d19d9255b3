"""Our murmur2 must place every key exactly where aiokafka (and Kafka's Java client) would."""

from __future__ import annotations

import random
import tracemalloc

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from service.answers.partitioning import Murmur2Partitioner, murmur2, partition_for


def test_murmur2_equals_aiokafkas_for_every_length_and_byte() -> None:
    rng = random.Random(6)
    samples = [rng.randbytes(rng.randint(0, 80)) for _ in range(5000)]
    samples += [bytes([b]) * n for b in (0, 0x7F, 0x80, 0xFF) for n in range(9)]
    mismatches = [s for s in samples if murmur2(s) != aiokafka_murmur2(s)]
    assert mismatches == []


def test_known_vector_from_kafkas_java_client() -> None:
    # Kafka's UtilsTest: murmur2("21") == -973932308 as a signed int
    assert murmur2(b"21") == -973932308 & 0xFFFFFFFF


def test_partition_choice_matches_aiokafkas_default_partitioner() -> None:
    rng = random.Random(7)
    for partitions in (1, 3, 6, 50):
        every = list(range(partitions))
        for _ in range(500):
            key = rng.randbytes(rng.randint(1, 40))
            expected = DefaultPartitioner()(key, every, every)
            assert partition_for(key, every) == expected
            assert Murmur2Partitioner()(key, every, every) == expected


def test_a_message_without_key_goes_to_an_available_partition() -> None:
    chosen = {Murmur2Partitioner()(None, [0, 1, 2], [2]) for _ in range(50)}
    assert chosen == {2}


def test_hashing_keys_of_every_length_keeps_no_memory_per_length() -> None:
    """Reply keys are the producers' keys: hashing one key of each of 1,000 lengths must not
    leave something behind per length."""
    keys = [b"k" * n for n in range(257, 1257)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for key in keys:
            murmur2(key)
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 16 * 1024, f"{kept} bytes kept after hashing 1,000 key lengths"
