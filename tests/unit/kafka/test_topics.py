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

    async def list_topics(self) -> list[str]:
        if self.raises is not None:
            raise self.raises
        return list(self.listed)

    async def create_topics(self, new: list[Any]) -> Answer:
        if self.raises is not None:
            raise self.raises
        self.asked += [(t.name, t.num_partitions, t.replication_factor) for t in new]
        return Answer([(t.name, self.codes.get(t.name, 0), None if self.codes.get(t.name)
                        in (None, 0) else "denied") for t in new])


async def test_created_existing_and_refused_topics_are_told_apart() -> None:
    admin = Admin(codes={"b": 36, "c": AUTH_FAILED})
    got = await topics.create_topics(admin, ["c", "a", "b", "a"], 6, 3)
    assert admin.asked == [("a", 6, 3), ("b", 6, 3), ("c", 6, 3)]
    assert (got.created, got.existing) == (("a",), ("b",))
    assert got.refused == {"c": "TopicAuthorizationFailedError: denied"}


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
