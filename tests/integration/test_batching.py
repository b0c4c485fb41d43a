"""hookd.kafka.batching.BatchedProducer against the real broker: every record lands once, keys
keep the default partitioner's partition, headers survive, a failure reaches its caller."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from hookd.kafka.batching import BatchedProducer
from tests.integration.broker import consume_all


@pytest.fixture
async def producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=200_000)
    await p.start()
    yield p
    await p.stop()


async def test_concurrent_records_all_land_once_in_their_keys_partitions(
        producer: AIOKafkaProducer, bootstrap: str, topic: str) -> None:
    batched = BatchedProducer(producer)
    records = [(b"key-%d" % (n % 37), b'{"n": %d}' % n) for n in range(600)]
    await asyncio.gather(*(batched.send_and_wait(topic, value, key=key,
                                                 headers=[("hookd-hook", b"crm")])
                           for key, value in records))
    got = await consume_all(bootstrap, topic, len(records))
    assert sorted(m.value for m in got) == sorted(v for _, v in records)
    partitions = sorted(await producer.partitions_for(topic))
    choose = DefaultPartitioner()
    for message in got:
        assert message.partition == choose(message.key, partitions, partitions)
        assert message.headers == (("hookd-hook", b"crm"),)
    for key in {k for k, _ in records}:  # one key's records stay in their order
        values = [int(m.value.split(b": ")[1].rstrip(b"}")) for m in got if m.key == key]
        assert values == sorted(values)


async def test_a_record_bigger_than_a_batch_is_sent_on_its_own(
        producer: AIOKafkaProducer, bootstrap: str, topic: str) -> None:
    batched = BatchedProducer(producer)
    big = b"x" * 100_000  # over the 16 KiB batch size, under max_request_size
    await asyncio.gather(batched.send_and_wait(topic, big, key=b"big"),
                         batched.send_and_wait(topic, b"small", key=b"small"))
    got = await consume_all(bootstrap, topic, 2)
    assert sorted(len(m.value) for m in got) == [5, 100_000]


async def test_a_record_the_producer_refuses_fails_its_caller_only(
        producer: AIOKafkaProducer, bootstrap: str, topic: str) -> None:
    batched = BatchedProducer(producer)
    too_big, fine = await asyncio.gather(
        batched.send_and_wait(topic, b"y" * 300_000, key=b"k"),  # over max_request_size
        batched.send_and_wait(topic, b"fine", key=b"k"), return_exceptions=True)
    assert isinstance(too_big, KafkaError)
    assert fine is None
    got = await consume_all(bootstrap, topic, 1)
    assert [m.value for m in got] == [b"fine"]


async def test_flush_sends_what_is_open(producer: AIOKafkaProducer, bootstrap: str,
                                        topic: str) -> None:
    batched = BatchedProducer(producer, linger=60.0)  # would wait a minute on its own
    pending = asyncio.create_task(batched.send_and_wait(topic, b"now", key=b"k"))
    await asyncio.sleep(0.05)
    assert not pending.done()
    await batched.flush()
    await asyncio.wait_for(pending, 5.0)
    assert [m.value for m in await consume_all(bootstrap, topic, 1)] == [b"now"]
