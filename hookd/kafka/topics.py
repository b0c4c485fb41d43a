"""hookd's own topics on a cluster that creates none by itself (auto.create.topics.enable
is off on most production clusters): the retry tiers, the dead-letter topic and the
delivery log (`kafka.outcomes_topic`) are created with the admin API, with
`kafka.retry_partitions` and `kafka.retry_replication`; a topic that already exists is
fine. When the cluster refuses (no CREATE permission), the log says which topics are
missing and how to create them, and hookd goes on: it works once they exist. A source
topic that does not exist is named in a warning.

Apache Kafka answers CreateTopics once its controller has the topic; each broker learns of
it a moment later. A consumer that subscribes in between is told the topic does not exist
and is assigned nothing until its next metadata refresh (aiokafka: 5 minutes). So a topic
created here is waited for until a broker serves a leader for every partition.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from hookd.config import KafkaConfig

log = structlog.get_logger("hookd.kafka.topics")
_CREATED, _EXISTS = 0, TopicAlreadyExistsError.errno
SERVED_WITHIN = 10.0  # seconds to wait for a created topic's leaders
RETENTION_FLOOR = 7 * 24 * 3600.0  # seconds: Kafka's own default (log.retention.hours=168)


def retry_topic_configs(delay: float) -> dict[str, str]:
    """The configs of a retry tier's topic, whose records wait `delay` seconds: deleted,
    never compacted (compaction keeps one record per key, and parked deliveries share
    their event's key), and kept at least twice their wait and never less than Kafka's
    default week, whatever the cluster's default (a cluster with log.retention.hours=24
    would delete a parked 24 h retry before it is due)."""
    keep_ms = int(max(2 * delay, RETENTION_FLOOR) * 1000)
    return {"cleanup.policy": "delete", "retention.ms": str(keep_ms)}


async def topic_configs(admin: Any, names: Iterable[str]) -> dict[str, dict[str, str]]:
    """The retention settings (cleanup.policy, retention.ms, retention.bytes) in force for
    each existing topic of `names`, as the cluster reports them (its defaults included)."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    wanted = dict.fromkeys(("cleanup.policy", "retention.ms", "retention.bytes"))
    answers = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, n, dict(wanted)) for n in names])
    found: dict[str, dict[str, str]] = {}
    for answer in answers:
        for resource in answer.to_object()["resources"]:
            if resource["error_code"] == 0:
                found[str(resource["resource_name"])] = {
                    str(e["config_names"]): str(e["config_value"])
                    for e in resource["config_entries"]}
    return found


def retention_problem(configs: Mapping[str, str], delay: float) -> str | None:
    """Why a retry topic with these configs could drop a record parked for `delay`
    seconds before it is due (None: it cannot)."""
    if "compact" in configs.get("cleanup.policy", "delete"):
        return (f"cleanup.policy={configs['cleanup.policy']}: compaction keeps one record "
                "per key, and parked deliveries share their event's key")
    retention = int(configs.get("retention.ms", "-1") or -1)
    if retention >= 0 and retention < 2 * delay * 1000:
        return (f"retention.ms={retention} is under twice the tier's delay "
                f"({int(2 * delay * 1000)} ms): a parked delivery can be deleted before "
                "it is due, or while a backlog is read")
    size = int(configs.get("retention.bytes", "-1") or -1)
    if size >= 0:
        return (f"retention.bytes={size}: a backlog over that size is deleted, parked "
                "deliveries with it")
    return None


@dataclass(frozen=True)
class Creation:
    """What CreateTopics said, per topic."""

    created: tuple[str, ...] = ()
    existing: tuple[str, ...] = ()
    refused: Mapping[str, str] = field(default_factory=dict)  # topic: why


async def create_topics(admin: Any, names: Iterable[str], partitions: int,
                        replication: int, configs: Mapping[str, Mapping[str, str]] | None
                        = None) -> Creation:
    """Ask for every topic in `names` (with its `configs`, if any); never raises (a broker
    down, or refusing, is a refusal of each). aiokafka does not raise per-topic errors:
    they are read here. Returns once the created topics are served (or after
    SERVED_WITHIN seconds, with a warning)."""
    wanted = sorted(set(names))
    if not wanted:
        return Creation()
    configs = configs or {}
    try:
        response = await admin.create_topics(
            [NewTopic(n, partitions, replication, topic_configs=dict(configs.get(n, {})))
             for n in wanted])
    except TopicAlreadyExistsError:
        return Creation(existing=tuple(wanted))
    except Exception as exc:
        return Creation(refused=dict.fromkeys(wanted, f"{type(exc).__name__}: {exc}"))
    created, existing, refused = [], [], {}
    for entry in response.topic_errors:
        name, code = str(entry[0]), int(entry[1])
        message = entry[2] if len(entry) > 2 else None
        if code == _CREATED:
            created.append(name)
        elif code == _EXISTS:
            existing.append(name)
        else:
            refused[name] = for_code(code).__name__ + (f": {message}" if message else "")
    if created:
        await until_served(admin, created, partitions)
    return Creation(tuple(created), tuple(existing), refused)


async def until_served(admin: Any, names: list[str], partitions: int,
                       within: float = SERVED_WITHIN) -> bool:
    """Until a broker's metadata has a leader for each of the `partitions` of every topic
    in `names`; False (and a warning) after `within` seconds. Never raises."""
    deadline, pending = time.monotonic() + within, sorted(names)
    while True:
        try:
            described = await admin.describe_topics(pending)
            pending = sorted(str(t["topic"]) for t in described if not _served(t, partitions))
        except Exception as exc:
            log.debug("describing new topics failed", error=f"{type(exc).__name__}: {exc}")
        if not pending:
            return True
        if time.monotonic() > deadline:
            log.warning("created topics not served yet; a consumer may see them only at its "
                        "next metadata refresh", topics=pending, waited_s=within)
            return False
        await asyncio.sleep(0.05)


def _served(topic: Mapping[str, Any], partitions: int) -> bool:
    parts = topic.get("partitions") or []
    return (topic.get("error_code") == 0 and len(parts) >= partitions
            and all(int(p.get("leader", -1)) >= 0 for p in parts))


def how_to_create(topics: Iterable[str], partitions: int, replication: int,
                  configs: Mapping[str, Mapping[str, str]] | None = None) -> list[str]:
    """The commands an operator runs when hookd may not create its topics (with the
    configs hookd would have given them: a retry topic's retention)."""
    configs = configs or {}
    return [f"kafka-topics.sh --bootstrap-server BROKER --create --topic {t} "
            f"--partitions {partitions} --replication-factor {replication}"
            + "".join(f" --config {k}={v}" for k, v in configs.get(t, {}).items())
            for t in sorted(topics)]


def report(creation: Creation, what: str, partitions: int, replication: int,
           configs: Mapping[str, Mapping[str, str]] | None = None) -> None:
    """Log what was created, and, loudly, what is missing and what to create."""
    if creation.created:
        log.info("topics created", kind=what, topics=list(creation.created),
                 partitions=partitions, replication=replication)
    if creation.refused:
        log.error(f"could not create the {what} topics; create them (or grant hookd CREATE "
                  "on them): until they exist, records for them cannot be written",
                  topics=sorted(creation.refused), errors=dict(creation.refused),
                  create=how_to_create(creation.refused, partitions, replication, configs))


OUTCOMES_CONFIGS = {"cleanup.policy": "delete"}  # never compacted: a key has many outcomes


async def prepare(admin: Any, kafka: KafkaConfig) -> None:
    """At start, before subscribing: a warning per missing source topic; the dead-letter
    topic and the outcomes topic (if any) created unless they exist. Never raises."""
    try:
        existing: set[str] | None = set(await admin.list_topics())
    except Exception as exc:
        log.warning("could not list topics", error=f"{type(exc).__name__}: {exc}")
        existing = None
    if existing is not None:
        for topic in kafka.topics:
            if topic not in existing:
                log.warning("source topic does not exist: nothing is read from it until it "
                            "is created", topic=topic)
    if existing is None or kafka.dead_letter_topic not in existing:
        report(await create_topics(admin, [kafka.dead_letter_topic], kafka.retry_partitions,
                                   kafka.retry_replication),
               "dead-letter", kafka.retry_partitions, kafka.retry_replication)
    log_topic = kafka.outcomes_topic
    if log_topic is not None and (existing is None or log_topic not in existing):
        configs = {log_topic: OUTCOMES_CONFIGS}
        report(await create_topics(admin, [log_topic], kafka.retry_partitions,
                                   kafka.retry_replication, configs),
               "outcomes", kafka.retry_partitions, kafka.retry_replication, configs)
