"""hookd's own topics on a cluster that creates none by itself (auto.create.topics.enable
is off on most production clusters): the retry tiers and the dead-letter topic are
created with the admin API, with `kafka.retry_partitions` and `kafka.retry_replication`;
a topic that already exists is fine. When the cluster refuses (no CREATE permission),
the log says which topics are missing and how to create them, and hookd goes on: it
works once they exist. A source topic that does not exist is named in a warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from hookd.config import KafkaConfig

log = structlog.get_logger("hookd.kafka.topics")
_CREATED, _EXISTS = 0, TopicAlreadyExistsError.errno


@dataclass(frozen=True)
class Creation:
    """What CreateTopics said, per topic."""

    created: tuple[str, ...] = ()
    existing: tuple[str, ...] = ()
    refused: Mapping[str, str] = field(default_factory=dict)  # topic: why


async def create_topics(admin: Any, names: Iterable[str], partitions: int,
                        replication: int) -> Creation:
    """Ask for every topic in `names`; never raises (a broker down, or refusing, is a
    refusal of each). aiokafka does not raise per-topic errors: they are read here."""
    wanted = sorted(set(names))
    if not wanted:
        return Creation()
    try:
        response = await admin.create_topics(
            [NewTopic(n, partitions, replication) for n in wanted])
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
    return Creation(tuple(created), tuple(existing), refused)


def how_to_create(topics: Iterable[str], partitions: int, replication: int) -> list[str]:
    """The commands an operator runs when hookd may not create its topics."""
    return [f"kafka-topics.sh --bootstrap-server BROKER --create --topic {t} "
            f"--partitions {partitions} --replication-factor {replication}"
            for t in sorted(topics)]


def report(creation: Creation, what: str, partitions: int, replication: int) -> None:
    """Log what was created, and, loudly, what is missing and what to create."""
    if creation.created:
        log.info("topics created", kind=what, topics=list(creation.created),
                 partitions=partitions, replication=replication)
    if creation.refused:
        log.error(f"could not create the {what} topics; create them (or grant hookd CREATE "
                  "on them): until they exist, records for them cannot be written",
                  topics=sorted(creation.refused), errors=dict(creation.refused),
                  create=how_to_create(creation.refused, partitions, replication))


async def prepare(admin: Any, kafka: KafkaConfig) -> None:
    """At start, before subscribing: a warning per missing source topic; the dead-letter
    topic created unless it exists. Never raises."""
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
