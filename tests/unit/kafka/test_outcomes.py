"""hookd.kafka.outcomes: the delivery log's record, from each kind of outcome (a table),
and its schema (`hookd schema outcomes`)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import TypeAdapter

from hookd.cli.commands import main
from hookd.events.decode import Event, Meta
from hookd.kafka.outcomes import (
    OutcomeRecord,
    outcome_record,
    outcomes_schema,
    to_json,
)

STAMP = 1_700_000_000_000  # the source record's timestamp, ms: 2023-11-14T22:13:20.000Z
FIRST, LAST, AT = 1_700_000_001.25, 1_700_000_002.5, 1_700_000_002.75
SOURCE = {"topic": "cc.events", "partition": 2, "offset": 41}


def event(timestamp: int | None = STAMP) -> Event:
    return Event("Answered", "call-7", {"event": "Answered", "queue_id": 7},
                 Meta("cc.events", 2, 41, "member-1", timestamp, {}))


HTTP_503 = {"kind": "http_status", "status": 503, "message": "HTTP 503"}
CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("delivered", dict(attempts=1, first_attempt_at=FIRST, last_attempt_at=LAST, status=200,
                       error=None),
     dict(status=200, attempts=1, first_attempt_at="2023-11-14T22:13:21.250Z",
          last_attempt_at="2023-11-14T22:13:22.500Z", error=None, latency_ms=2750)),
    ("dead_lettered", dict(attempts=3, first_attempt_at=FIRST, last_attempt_at=LAST,
                           status=400, error={"kind": "http_status", "status": 400,
                                              "message": "HTTP 400"}),
     dict(status=400, attempts=3, error={"kind": "http_status", "status": 400,
                                         "message": "HTTP 400"})),
    ("dead_lettered", dict(attempts=0, first_attempt_at=None, last_attempt_at=None,
                           status=None, error={"kind": "render", "status": None,
                                               "message": "undefined"}),
     dict(status=None, attempts=0, first_attempt_at=None, last_attempt_at=None)),
    ("skipped", dict(attempts=0, first_attempt_at=None, last_attempt_at=None, status=None,
                     error={"kind": "hook_disabled", "status": None, "message": "410 Gone"}),
     dict(status=None, retry_topic=None, due_at=None)),
    ("parked", dict(attempts=2, first_attempt_at=FIRST, last_attempt_at=LAST, status=503,
                    error=HTTP_503, retry_topic="hookd.retry.5m", due_at=AT + 300),
     dict(retry_topic="hookd.retry.5m", due_at="2023-11-14T22:18:22.750Z", error=HTTP_503)),
]


@pytest.mark.parametrize(("outcome", "given", "expected"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_outcome_makes_its_record(outcome: Any, given: dict[str, Any],
                                       expected: dict[str, Any]) -> None:
    record = outcome_record(outcome, "crm", event(), at=AT, **given)
    assert {k: record[k] for k in expected} == expected  # type: ignore[literal-required]
    assert (record["hook"], record["event_id"], record["event"], record["outcome"]) == (
        "crm", "call-7", "Answered", outcome)
    assert record["webhook_id"].startswith("msg_") and len(record["webhook_id"]) == 36
    assert record["source"] == SOURCE
    assert record["at"] == "2023-11-14T22:13:22.750Z"
    assert record["latency_ms"] == 2750  # from the source record's timestamp to `at`
    assert orjson.loads(to_json(record)) == record
    TypeAdapter(OutcomeRecord).validate_python(record, strict=True)  # what the schema says


def test_the_webhook_id_is_the_one_the_receiver_saw() -> None:
    from hookd.requests.signing import webhook_id

    record = outcome_record("delivered", "crm", event(), attempts=1, first_attempt_at=FIRST,
                            last_attempt_at=LAST, status=200, error=None, at=AT)
    assert record["webhook_id"] == webhook_id("call-7", "crm")


@pytest.mark.parametrize(("timestamp", "latency"), [(None, None), (-1, None),
                                                    (int(AT * 1000) + 5, 0)])
def test_latency_without_a_usable_timestamp(timestamp: int | None,
                                            latency: int | None) -> None:
    """No timestamp (or Kafka's -1): null; a producer's clock ahead of ours: 0, not < 0."""
    record = outcome_record("skipped", "crm", event(timestamp), attempts=0,
                            first_attempt_at=None, last_attempt_at=None, status=None,
                            error=None, at=AT)
    assert record["latency_ms"] == latency


def test_the_schema_requires_every_field_the_builder_writes() -> None:
    schema = outcomes_schema()
    record = outcome_record("delivered", "crm", event(), attempts=1, first_attempt_at=FIRST,
                            last_attempt_at=LAST, status=200, error=None, at=AT)
    assert set(schema["required"]) == set(schema["properties"]) == set(record)
    assert schema["properties"]["outcome"]["enum"] == [
        "delivered", "dead_lettered", "skipped", "parked"]
    assert "Kafka timestamp" in schema["properties"]["latency_ms"]["description"]


def test_hookd_schema_outcomes_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "outcomes"]) == 0
    printed = orjson.loads(capsys.readouterr().out)
    assert printed == outcomes_schema()
    assert printed["title"] == "hookd delivery log record"
