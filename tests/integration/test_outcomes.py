"""The delivery log (kafka.outcomes_topic) on a real broker: hookd delivers (200),
dead-letters (a 400), parks (a 503, in a retry topic) and skips (a hook disabled by a
410) events, and a librdkafka consumer reads one record per outcome, field by field."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import yaml

from hookd.kafka.outcomes import outcomes_schema
from hookd.requests.signing import webhook_id
from tests.integration.harness import (
    committed,
    hook,
    new_topic,
    produce,
    read_topic,
    running,
    unique,
    until,
    wait_ready,
    write_config,
)
from tests.integration.rdkafka import Read, consume
from tests.integration.receiver import Receiver

PARTS = 2
# attempt 1; attempt 2 after 50 ms in memory; then parked for 1 s in a retry topic
DELIVERY = {"allow_networks": ["127.0.0.0/8"], "timeout": "2s",
            "retry": {"schedule": ["50ms", "1s"], "inline_max": "200ms", "jitter": 0.0}}


def _ms(rfc3339: str) -> int:
    return round(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000)


def _config(tmp_path: Path, bootstrap: str, topic: str, log: str, group: str,
            receiver: Receiver) -> Path:
    hooks = [hook("crm", "Answered", receiver.url("/ok"), filter={"id": "e-ok"}),
             hook("bad", "Answered", receiver.url("/bad"), filter={"id": "e-bad"}),
             hook("flaky", "Answered", receiver.url("/flaky"), filter={"id": "e-park"}),
             hook("gone", "Answered", receiver.url("/gone"),
                  filter={"id": {"in": ["e-gone-1", "e-gone-2"]}})]
    path = write_config(tmp_path, bootstrap, topic, hooks, group=group, delivery=DELIVERY)
    data = yaml.safe_load(path.read_text())
    data["kafka"].update({"retry_topic_prefix": unique("retry"), "outcomes_topic": log})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


async def test_each_outcome_is_one_record_that_librdkafka_reads(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    topic, log, group = await new_topic(broker.bootstrap, PARTS, "oc"), unique("log"), unique("g")
    receiver.plan["/bad"].append(400)
    receiver.plan["/flaky"].extend([503, 503])  # then 200, from the retry topic
    receiver.plan["/gone"].append(410)
    cfg = _config(tmp_path, broker.bootstrap, topic, log, group, receiver)
    events = [(f"k-{e}".encode(), {"event": "Answered", "id": e})
              for e in ("e-ok", "e-bad", "e-park", "e-gone-1")]
    async with running(cfg) as daemon:
        await wait_ready(daemon)  # the outcomes topic was created at start
        await produce(broker.bootstrap, topic, events)
        await until(lambda: "gone" in daemon.state()[1]["disabled_hooks"])
        await produce(broker.bootstrap, topic, [(b"k-e-gone-2", {"event": "Answered",
                                                                  "id": "e-gone-2"})])
        await receiver.wait_for(3, "/flaky")  # the parked one came back and was delivered
        read = await consume(broker.bootstrap, log, 6)
        # every source record is committed: none waits for an outcome record any more
        await until(lambda: daemon.source.tracker.in_flight() == 0)  # type: ignore[union-attr]
    assert len(receiver.at("/gone")) == 1  # e-gone-2 was not sent
    offsets = await committed(broker.bootstrap, group, topic, PARTS)
    assert sum(max(o, 0) for o in offsets.values()) == 5

    sources = {orjson.loads(r.value)["id"]: r for r in await read_topic(
        broker.bootstrap, topic, 5)}
    assert len(read) == 6, [r.value for r in read]
    docs = sorted(((orjson.loads(r.value or b""), r) for r in read),
                  key=lambda d: (d[0]["event_id"], d[0]["at"]))
    schema = outcomes_schema()
    for doc, rec in docs:  # what every record holds, whatever its outcome
        assert set(doc) == set(schema["required"])
        assert rec.key == doc["event_id"].encode()
        assert dict(rec.headers) == {"hookd-outcome": doc["outcome"].encode(),
                                     "hookd-hook": doc["hook"].encode()}
        src = sources[doc["event_id"]]
        assert doc["source"] == {"topic": topic, "partition": src.partition,
                                 "offset": src.offset}
        assert doc["event"] == "Answered"
        assert doc["webhook_id"] == webhook_id(doc["event_id"], doc["hook"])
        assert abs(doc["latency_ms"] - (_ms(doc["at"]) - src.timestamp)) <= 1
        if doc["first_attempt_at"] is not None:
            assert doc["last_attempt_at"] is None or (
                _ms(doc["first_attempt_at"]) <= _ms(doc["last_attempt_at"]) <= _ms(doc["at"]))
    assert [_brief(doc) for doc, _ in docs] == [
        ("e-bad", "bad", "dead_lettered", 400, 1, "http_status", None),
        ("e-gone-1", "gone", "dead_lettered", 410, 1, "http_status", None),
        ("e-gone-2", "gone", "skipped", None, 0, "hook_disabled", None),
        ("e-ok", "crm", "delivered", 200, 1, None, None),
        ("e-park", "flaky", "parked", 503, 2, "http_status", f"{_prefix(cfg)}.1s"),
        ("e-park", "flaky", "delivered", 200, 3, None, None),
    ]
    by = {(d["event_id"], d["outcome"]): d for d, _ in docs}
    ok, parked, later = by["e-ok", "delivered"], by["e-park", "parked"], by["e-park", "delivered"]
    assert ok["error"] is None and ok["retry_topic"] is None and ok["due_at"] is None
    assert parked["error"] == {"kind": "http_status", "status": 503,
                               "message": "HTTP 503: no"}  # (the receiver's body)
    assert _ms(parked["due_at"]) - _ms(parked["at"]) in range(800, 1001)  # the 1 s tier
    assert later["first_attempt_at"] == parked["first_attempt_at"]  # the same delivery
    assert later["latency_ms"] > parked["latency_ms"]  # the event's age, parking included
    skipped = by["e-gone-2", "skipped"]
    assert skipped["error"]["message"] == f"410 Gone from {receiver.url('/gone')}"
    assert skipped["first_attempt_at"] is None and skipped["last_attempt_at"] is None
    assert by["e-bad", "dead_lettered"]["error"]["status"] == 400
    _show(read)


def _prefix(cfg: Path) -> str:
    return str(yaml.safe_load(cfg.read_text())["kafka"]["retry_topic_prefix"])


def _brief(doc: dict[str, Any]) -> tuple[Any, ...]:
    return (doc["event_id"], doc["hook"], doc["outcome"], doc["status"], doc["attempts"],
            doc["error"] and doc["error"]["kind"], doc["retry_topic"])


def _show(read: list[Read]) -> None:
    """The records as read (pytest -s prints them: the report's "must show")."""
    for rec in read:
        print(f"{rec.topic}[{rec.partition}]@{rec.offset} key={rec.key!r} "
              f"headers={list(rec.headers)}\n  {(rec.value or b'').decode()}")
