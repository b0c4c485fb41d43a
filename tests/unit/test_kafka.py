"""Kafka clients as hookd configures them (built, not started: no broker here)."""

from __future__ import annotations

from hookd.config import KafkaConfig
from hookd.kafka import make_consumer, make_retry_consumer


async def test_the_retry_consumer_can_wait_longer_for_data_than_the_main_one() -> None:
    kafka = KafkaConfig.model_validate({"bootstrap_servers": ["127.0.0.1:9"]})
    assert (kafka.consumer.fetch_max_wait, kafka.consumer.retry_fetch_max_wait) == (0.1, 0.5)
    main = make_consumer(kafka)
    retry = make_retry_consumer(kafka)  # what the daemon builds for the retry topics
    # aiokafka keeps it as given until start() hands it to its fetcher
    assert main._fetch_max_wait_ms == 100
    assert retry._fetch_max_wait_ms == 500
    assert retry._group_id == "hookd.retry"
