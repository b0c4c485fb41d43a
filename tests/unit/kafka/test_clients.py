"""Kafka clients as hookd configures them: what it asks aiokafka for (no broker here)."""

from __future__ import annotations

from typing import Any

import pytest

from hookd.config import KafkaConfig
from hookd.kafka import clients as kafka_mod
from hookd.kafka.clients import make_consumer, make_producer, make_retry_consumer


class AskedFor:
    """Stands in for AIOKafkaConsumer: keeps the arguments it was built with (aiokafka has
    no public getter for them, and keeps some only privately until start())."""

    def __init__(self, *topics: str, **kwargs: Any) -> None:
        self.topics, self.kwargs = topics, kwargs


def test_the_retry_consumer_can_wait_longer_for_data_than_the_main_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_mod, "AIOKafkaConsumer", AskedFor)
    kafka = KafkaConfig.model_validate({"bootstrap_servers": ["127.0.0.1:9"],
                                        "group_id": "hookd"})
    assert (kafka.consumer.fetch_max_wait, kafka.consumer.retry_fetch_max_wait) == (0.1, 0.5)
    main: Any = make_consumer(kafka)
    retry: Any = make_retry_consumer(kafka)  # what the daemon builds for the retry topics
    assert main.kwargs["fetch_max_wait_ms"] == 100
    assert main.kwargs["group_id"] == "hookd"
    assert retry.kwargs["fetch_max_wait_ms"] == 500
    assert retry.kwargs["group_id"] == "hookd.retry"
    assert retry.kwargs["auto_offset_reset"] == "earliest"  # parked records are never skipped
    assert main.kwargs["enable_auto_commit"] is retry.kwargs["enable_auto_commit"] is False


async def test_aiokafka_takes_what_hookd_asks_for() -> None:
    """The spy above takes any keyword; aiokafka itself refuses one it does not know."""
    kafka = KafkaConfig.model_validate({"bootstrap_servers": ["127.0.0.1:9"]})
    assert type(make_consumer(kafka)).__name__ == "AIOKafkaConsumer"
    assert type(make_retry_consumer(kafka)).__name__ == "AIOKafkaConsumer"


@pytest.mark.parametrize(("idempotence", "asked"), [(False, False), (True, True),
                                                    ("auto", True), (None, True)])
def test_the_producer_waits_for_every_replica_and_is_idempotent_when_asked(
        monkeypatch: pytest.MonkeyPatch, idempotence: bool | str | None, asked: bool) -> None:
    """"auto", the default, asks for an idempotent producer first (connect falls back to a
    plain one, make_producer(idempotent=False), if the broker refuses)."""
    monkeypatch.setattr(kafka_mod, "AIOKafkaProducer", AskedFor)
    kafka = KafkaConfig.model_validate({"bootstrap_servers": ["127.0.0.1:9"]} | (
        {} if idempotence is None else {"idempotence": idempotence}))
    producer: Any = make_producer(kafka)
    assert producer.kwargs["acks"] == "all"
    assert producer.kwargs["enable_idempotence"] is asked
    assert make_producer(kafka, idempotent=False).kwargs["enable_idempotence"] is False


async def test_aiokafka_takes_the_producer_hookd_asks_for() -> None:
    kafka = KafkaConfig.model_validate({"bootstrap_servers": ["127.0.0.1:9"],
                                        "idempotence": True})
    producer = make_producer(kafka)
    assert type(producer).__name__ == "AIOKafkaProducer"
    await producer.stop()  # never started: nothing to close but its loop-bound parts
