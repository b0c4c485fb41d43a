"""hookd.kafka.batching: a key's partition is the default partitioner's (murmur2, as
Kafka's Java client places it), whether its hash was kept or not."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner

from hookd.kafka.batching import key_hash


def test_a_keys_partition_is_the_default_partitioners() -> None:
    rng = random.Random(3)
    keys = [rng.randbytes(rng.randrange(0, 64)) for _ in range(3000)]
    choose = DefaultPartitioner()
    for partitions in ([0], [0, 1, 2, 3], list(range(7)), list(range(64))):
        for key in keys + keys[:100]:  # the second time from the cache
            assert partitions[key_hash(key) % len(partitions)] == choose(
                key, partitions, partitions)


def test_murmur2_is_aiokafkas_to_the_bit() -> None:
    """The whole 32 bits, not only the partition's 31: every tail length, and bytes with
    the high bit set (aiokafka masks each byte; here they are unsigned already)."""
    from aiokafka.partitioner import murmur2 as theirs

    from hookd.kafka.batching import murmur2
    rng = random.Random(5)
    keys = [rng.randbytes(n) for n in range(0, 80) for _ in range(20)]
    keys += [b"\xff" * n for n in range(12)] + [b"\x80\x00\x7f\xff" * 5 + b"\x81"]
    for key in keys:
        assert murmur2(key) == theirs(key), key
