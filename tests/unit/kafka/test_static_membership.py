"""`kafka.group_instance_id`: static membership (KIP-345) for the source and retry consumers,
as built for aiokafka (no broker here), and how the config loader treats the name."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from hookd.config import KafkaConfig
from hookd.kafka import clients as kafka_mod
from hookd.kafka.clients import make_consumer, make_retry_consumer, make_source_consumer
from hookd.pipeline.runtime import load_config
from tests.unit.conftest import WriteConfig
from tests.unit.kafka.test_clients import AskedFor


def _kafka(**more: Any) -> KafkaConfig:
    return KafkaConfig.model_validate({"bootstrap_servers": ["127.0.0.1:9"],
                                       "group_id": "hookd", **more})


def test_dynamic_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_mod, "AIOKafkaConsumer", AskedFor)
    kafka = _kafka()
    assert kafka.group_instance_id is None
    source: Any = make_source_consumer(kafka)
    retry: Any = make_retry_consumer(kafka)
    assert source.kwargs["group_instance_id"] is retry.kwargs["group_instance_id"] is None


def test_the_source_consumer_is_static_and_the_retry_one_too_under_its_own_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_mod, "AIOKafkaConsumer", AskedFor)
    kafka = _kafka(group_instance_id="hookd-web1-8081")
    source: Any = make_source_consumer(kafka)
    retry: Any = make_retry_consumer(kafka)
    assert (source.kwargs["group_id"], source.kwargs["group_instance_id"]) == (
        "hookd", "hookd-web1-8081")
    assert (retry.kwargs["group_id"], retry.kwargs["group_instance_id"]) == (
        "hookd.retry", "hookd-web1-8081.retry")


def test_other_consumers_stay_dynamic(monkeypatch: pytest.MonkeyPatch) -> None:
    """`hookd replay` builds its consumer with make_consumer: a static member of the
    replay group would hold its partitions for a session timeout after every run."""
    monkeypatch.setattr(kafka_mod, "AIOKafkaConsumer", AskedFor)
    replay: Any = make_consumer(_kafka(group_instance_id="hookd-a"), "hookd.replay",
                                from_start=True)
    assert replay.kwargs["group_instance_id"] is None


async def test_aiokafka_holds_the_instance_id_for_its_join_requests() -> None:
    """The real aiokafka objects (their coordinator is made at start: the id is kept on
    the consumer until then, and sent in every JoinGroup / SyncGroup / Heartbeat)."""
    kafka = _kafka(group_instance_id="hookd-web1-8081")
    source, retry = make_source_consumer(kafka), make_retry_consumer(kafka)
    assert source._group_instance_id == "hookd-web1-8081"
    assert retry._group_instance_id == "hookd-web1-8081.retry"
    assert make_source_consumer(_kafka())._group_instance_id is None


@pytest.mark.parametrize("bad", ["", ".", "..", "has space", "a/b", "x" * 244, "é"])
def test_a_name_kafka_would_refuse_is_a_config_error(bad: str) -> None:
    with pytest.raises(ValidationError, match="not a group instance id"):
        _kafka(group_instance_id=bad)


@pytest.mark.parametrize("good", ["hookd-web1.example.com-8081", "a", "A_b-9." + "x" * 237])
def test_names_kafka_takes(good: str) -> None:
    assert _kafka(group_instance_id=good).group_instance_id == good


def test_an_env_reference_is_substituted_and_not_treated_as_a_secret(
        write_config: WriteConfig) -> None:
    tree = write_config("""
        kafka:
          group_instance_id: "hookd-${env:HOOKD_INSTANCE}"
          security: {protocol: SASL_PLAINTEXT, sasl_mechanism: PLAIN,
                     username: u, password: "${env:KAFKA_PASSWORD}"}
        """)
    runtime = load_config(tree.main, environ={"HOOKD_INSTANCE": "web1-8081",
                                              "KAFKA_PASSWORD": "s3cret-pw"})
    assert runtime.config.kafka.group_instance_id == "hookd-web1-8081"
    assert "web1-8081" not in runtime.secrets  # shown in logs: which process wrote a line
    assert "s3cret-pw" in runtime.secrets  # the rest of the file is as before


def test_the_same_value_used_as_a_secret_elsewhere_stays_masked(
        write_config: WriteConfig) -> None:
    tree = write_config("""
        kafka:
          group_instance_id: "${env:SHARED}"
          security: {protocol: SASL_PLAINTEXT, sasl_mechanism: PLAIN,
                     username: u, password: "${env:SHARED}"}
        """)
    runtime = load_config(tree.main, environ={"SHARED": "same-value"})
    assert "same-value" in runtime.secrets


def test_an_unset_variable_is_a_located_config_error(write_config: WriteConfig) -> None:
    from hookd.errors import ConfigError

    tree = write_config("""
        kafka:
          group_instance_id: "hookd-${env:HOOKD_INSTANCE}"
        """)
    with pytest.raises(ConfigError) as caught:
        load_config(tree.main, environ={})
    assert "HOOKD_INSTANCE is not set" in str(caught.value.issues[0])
