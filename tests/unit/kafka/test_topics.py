"""hookd's own topics where the cluster creates none by itself: what CreateTopics answered,
per topic, and what the log tells the operator to create (the broker itself in
tests/integration/test_topics_and_check.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka.errors import ClusterAuthorizationFailedError, KafkaConnectionError
from structlog.testing import capture_logs

from hookd.config import KafkaConfig
from hookd.kafka import topics
from hookd.kafka.parking import ParkingLot

AUTH_FAILED = 29  # TOPIC_AUTHORIZATION_FAILED


@dataclass
class Answer:
    topic_errors: list[tuple[Any, ...]]


@dataclass
class Admin:
    """Answers as a cluster does: `codes` per topic (0 when not named), `listed` topics."""

    listed: list[str] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    raises: Exception | None = None
    asked: list[tuple[str, int, int]] = field(default_factory=list)
    configs: dict[str, dict[str, str]] = field(default_factory=dict)
    leaderless: int = 0  # describe_topics answers this many times before leaders are known
    described: int = 0

    async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        self.described += 1
        leader = 1 if self.described > self.leaderless else -1
        return [{"topic": n, "error_code": 0, "partitions": [
            {"partition": p, "leader": leader} for p in range(self.partitions(n))]}
            for n in names]

    def partitions(self, name: str) -> int:
        return next((p for t, p, _r in self.asked if t == name), 1)

    async def list_topics(self) -> list[str]:
        if self.raises is not None:
            raise self.raises
        return list(self.listed)

    async def create_topics(self, new: list[Any]) -> Answer:
        if self.raises is not None:
            raise self.raises
        self.asked += [(t.name, t.num_partitions, t.replication_factor) for t in new]
        self.configs.update({t.name: dict(t.topic_configs) for t in new})
        return Answer([(t.name, self.codes.get(t.name, 0), None if self.codes.get(t.name)
                        in (None, 0) else "denied") for t in new])


async def test_created_existing_and_refused_topics_are_told_apart() -> None:
    admin = Admin(codes={"b": 36, "c": AUTH_FAILED})
    got = await topics.create_topics(admin, ["c", "a", "b", "a"], 6, 3)
    assert admin.asked == [("a", 6, 3), ("b", 6, 3), ("c", 6, 3)]
    assert (got.created, got.existing) == (("a",), ("b",))
    assert got.refused == {"c": "TopicAuthorizationFailedError: denied"}


async def test_a_created_topic_is_waited_for_until_every_partition_has_a_leader() -> None:
    """Kafka's brokers learn of a new topic after CreateTopics answers: a consumer that
    subscribed in between would be assigned nothing until its next metadata refresh."""
    admin = Admin(leaderless=3)
    await topics.create_topics(admin, ["a"], 2, 1)
    assert admin.described == 4


async def test_a_topic_never_served_is_given_up_on_with_a_warning() -> None:
    admin = Admin(leaderless=10**9)
    with capture_logs() as logs:
        assert not await topics.until_served(admin, ["a"], 1, within=0.2)
    assert admin.described > 1  # asked again and again, each time without a leader
    assert [e["topics"] for e in logs if e["log_level"] == "warning"] == [["a"]]


async def test_topic_configs_are_sent_with_the_topic_they_name() -> None:
    admin = Admin()
    await topics.create_topics(admin, ["a", "b"], 1, 1, {"a": {"retention.ms": "5"}})
    assert admin.configs == {"a": {"retention.ms": "5"}, "b": {}}


@pytest.mark.parametrize("error", [ClusterAuthorizationFailedError(),
                                   KafkaConnectionError("no broker")])
async def test_a_request_that_fails_whole_refuses_every_topic(error: Exception) -> None:
    got = await topics.create_topics(Admin(raises=error), ["x", "y"], 1, 1)
    assert sorted(got.refused) == ["x", "y"]
    assert got.refused["x"].startswith(type(error).__name__)


async def test_the_dead_letter_topic_is_created_with_the_configured_layout() -> None:
    kafka = KafkaConfig.model_validate({"topics": ["src"], "dead_letter_topic": "dlq",
                                        "retry_partitions": 8, "retry_replication": 2})
    admin = Admin(listed=["src"])
    with capture_logs() as logs:
        await topics.prepare(admin, kafka)
    assert admin.asked == [("dlq", 8, 2)]
    assert [(e["event"], e["topics"]) for e in logs] == [("topics created", ["dlq"])]


async def test_the_outcomes_topic_is_created_beside_it_never_compacted() -> None:
    kafka = KafkaConfig.model_validate({"topics": ["src"], "dead_letter_topic": "dlq",
                                        "outcomes_topic": "log", "retry_partitions": 8,
                                        "retry_replication": 2})
    admin = Admin(listed=["src", "dlq"], codes={"log": AUTH_FAILED})
    with capture_logs() as logs:
        await topics.prepare(admin, kafka)
    assert admin.asked == [("log", 8, 2)]
    assert admin.configs == {"log": {"cleanup.policy": "delete"}}
    (error,) = logs
    assert error["topics"] == ["log"] and "outcomes" in error["event"]
    assert error["create"] == ["kafka-topics.sh --bootstrap-server BROKER --create --topic log "
                               "--partitions 8 --replication-factor 2 "
                               "--config cleanup.policy=delete"]
    admin = Admin(listed=["src", "dlq", "log"])
    await topics.prepare(admin, kafka)
    assert admin.asked == []


async def test_an_existing_dead_letter_topic_is_left_alone() -> None:
    kafka = KafkaConfig.model_validate({"topics": ["src"], "dead_letter_topic": "dlq"})
    admin = Admin(listed=["src", "dlq"])
    with capture_logs() as logs:
        await topics.prepare(admin, kafka)
    assert (admin.asked, logs) == ([], [])


async def test_a_missing_source_topic_is_named_and_refusal_says_what_to_create() -> None:
    kafka = KafkaConfig.model_validate({"topics": ["here", "gone"], "dead_letter_topic": "dlq",
                                        "retry_partitions": 3, "retry_replication": 3})
    with capture_logs() as logs:
        await topics.prepare(Admin(listed=["here"], codes={"dlq": AUTH_FAILED}), kafka)
    warning, error = logs
    assert (warning["log_level"], warning["topic"]) == ("warning", "gone")
    assert "source topic does not exist" in warning["event"]
    assert error["log_level"] == "error" and error["topics"] == ["dlq"]
    assert error["create"] == ["kafka-topics.sh --bootstrap-server BROKER --create --topic dlq "
                               "--partitions 3 --replication-factor 3"]


async def test_the_retry_tiers_go_the_same_way() -> None:
    admin = Admin(codes={"hookd.retry.5m": AUTH_FAILED})
    lot = ParkingLot(None, admin, "hookd.retry", partitions=4, replication=3)
    with capture_logs() as logs:
        assert await lot.ensure_tiers([30.0, 300.0])
    assert admin.asked == [("hookd.retry.30s", 4, 3), ("hookd.retry.5m", 4, 3)]
    refused = [e for e in logs if e["log_level"] == "error"]
    assert [e["topics"] for e in refused] == [["hookd.retry.5m"]]
    assert "could not create the retry topics" in refused[0]["event"]
    assert lot.topic_for(300.0) == "hookd.retry.5m"  # used once someone creates it


@pytest.mark.parametrize(("delay", "kept_ms"), [
    (1.0, 7 * 24 * 3600 * 1000),            # a short tier: Kafka's default week
    (24 * 3600.0, 7 * 24 * 3600 * 1000),
    (5 * 24 * 3600.0, 10 * 24 * 3600 * 1000),  # twice its wait, over the week
])
def test_a_retry_topic_keeps_its_records_twice_their_wait_and_at_least_a_week(
        delay: float, kept_ms: int) -> None:
    configs = topics.retry_topic_configs(delay)
    assert configs == {"cleanup.policy": "delete", "retention.ms": str(kept_ms)}
    assert topics.retention_problem(configs, delay) is None


@pytest.mark.parametrize(("configs", "delay", "problem"), [
    ({"cleanup.policy": "delete", "retention.ms": "-1"}, 86400.0, None),
    ({"cleanup.policy": "delete", "retention.ms": "172800000"}, 86400.0, None),
    ({"cleanup.policy": "delete", "retention.ms": "86400000"}, 86400.0, "retention.ms=86400000"),
    ({"cleanup.policy": "compact"}, 1.0, "cleanup.policy=compact"),
    ({"cleanup.policy": "compact,delete", "retention.ms": "-1"}, 1.0, "compaction"),
    ({"retention.ms": "-1", "retention.bytes": "1073741824"}, 1.0, "retention.bytes="),
])
def test_a_retry_topic_that_could_drop_a_parked_delivery_is_named(
        configs: dict[str, str], delay: float, problem: str | None) -> None:
    got = topics.retention_problem(configs, delay)
    assert (got is None) if problem is None else (got is not None and problem in got), got


def test_the_command_for_a_missing_retry_topic_carries_its_retention() -> None:
    """When hookd may not create a retry topic, the command it logs makes it as hookd
    would have: deleted, never compacted, kept twice its delay and at least a week."""
    configs = {"hookd.retry.1d": topics.retry_topic_configs(86400.0)}
    assert topics.how_to_create(["hookd.retry.1d", "dlq"], 4, 3, configs) == [
        "kafka-topics.sh --bootstrap-server BROKER --create --topic dlq --partitions 4 "
        "--replication-factor 3",
        "kafka-topics.sh --bootstrap-server BROKER --create --topic hookd.retry.1d "
        "--partitions 4 --replication-factor 3 --config cleanup.policy=delete "
        "--config retention.ms=604800000",
    ]
