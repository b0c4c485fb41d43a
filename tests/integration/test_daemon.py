"""The daemon end to end: real broker (tansu), real HTTP receivers, in this process."""

from __future__ import annotations

import base64
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook

from hookd.requests.signing import webhook_id
from tests.integration.harness import (
    WHSEC,
    committed,
    hook,
    produce,
    read_topic,
    running,
    unique,
    until,
    wait_ready,
    write_config,
)
from tests.integration.receiver import Receiver
from tests.integration.traffic import mixed_events

PARTITIONS = 4  # of conftest's `topic` (TOPIC_PARTITIONS)


async def test_mixed_traffic_delivered_signed_and_in_key_order(
        broker: Any, topic: str, receiver: Receiver, tmp_path: Path) -> None:
    events = mixed_events(3000)
    hooks = [
        hook("queue", ["Joined", "Offering", "Answered", "Bridged", "Processing", "Leaving"],
             receiver.url("/queue/{{ event|lower }}"), signing={"secret": WHSEC},
             request={"body": '{"call": {{ member_call_id|tojson }}, "step": {{ step }},'
                              ' "event": {{ event|tojson }}}'}),
        hook("calls", "Call:*", receiver.url("/calls"), filter={"environment": "production"},
             request={"fields": ["uuid", "step", "caller_id_number"],
                      "map": {"caller_id_number": "from"}}),
        hook("workitems", "workitemclosed", receiver.url("/wi"),
             auth={"type": "api_key", "value": "k-123"}),
    ]
    expected = [e for _, e in events if e["event"] in
                ("Joined", "Offering", "Answered", "Bridged", "Processing", "Leaving",
                 "WorkItemClosed") or (e["event"].startswith("Call:")
                                       and e["environment"] == "production")]
    cfg = write_config(tmp_path, broker.bootstrap, topic, hooks)
    await produce(broker.bootstrap, topic, events)
    async with running(cfg) as daemon:
        await receiver.wait_for(len(expected), timeout=90)
        await until(lambda: daemon.source.tracker.committable() == {}, 10)

    assert len(receiver.requests) == len(expected)  # exactly once in a clean run
    verifier = Webhook(WHSEC)
    per_key: dict[tuple[str, str], list[int]] = defaultdict(list)
    for req in receiver.requests:
        if req.path.startswith("/queue/"):
            verifier.verify(req.body, req.headers)  # raises if the signature is wrong
            body = orjson.loads(req.body)
            assert req.path == f"/queue/{body['event'].lower()}"
            assert req.headers["webhook-id"] == webhook_id(f"{body['call']}-{body['step']}",
                                                           "queue")
            per_key[("queue", body["call"])].append(body["step"])
        elif req.path == "/calls":
            body = orjson.loads(req.body)
            assert set(body) == {"uuid", "step", "from"}
            assert "webhook-signature" not in req.headers
            per_key[("calls", body["uuid"])].append(body["step"])
        else:
            assert req.headers["x-api-key"] == "k-123"
            assert orjson.loads(req.body)["event"] == "WorkItemClosed"
    for key, steps in per_key.items():
        assert steps == sorted(steps), f"{key} out of order: {steps}"


async def test_undecodable_records_go_to_the_dead_letter_topic(
        broker: Any, topic: str, receiver: Receiver, tmp_path: Path) -> None:
    dlq = unique("dlq")
    cfg = write_config(tmp_path, broker.bootstrap, topic,
                       [hook("h", "Joined", receiver.url("/ok"))], dlq=dlq)
    garbage = [b"\xff\xfe not utf-8", b"not json", b"[1, 2]", b"42", b'{"no_name": 1}']
    await produce(broker.bootstrap, topic, [(b"k", g) for g in garbage])
    await produce(broker.bootstrap, topic, [(b"k", {"event": "Joined", "id": "after"})])
    async with running(cfg):
        letters = await read_topic(broker.bootstrap, dlq, len(garbage))
        await receiver.wait_for(1)  # consumption went on after the garbage
    records = [orjson.loads(r.value) for r in letters]
    assert sorted(base64.b64decode(r["raw"]) for r in records) == sorted(garbage)
    for rec in records:
        assert rec["error"]["kind"] == "decode"
        assert rec["hook"] is None and rec["payload"] is None
        assert rec["source"]["topic"] == topic
    assert {r.key for r in letters} == {b"k"}


async def test_404_is_dead_lettered_at_once_with_its_status(
        broker: Any, topic: str, receiver: Receiver, tmp_path: Path) -> None:
    dlq = unique("dlq")
    receiver.plan["/gone-wrong"].extend([404])
    cfg = write_config(tmp_path, broker.bootstrap, topic,
                       [hook("crm", "Answered", receiver.url("/gone-wrong"))], dlq=dlq)
    await produce(broker.bootstrap, topic, [(b"c1", {"event": "Answered", "id": "e-404"})])
    async with running(cfg):
        [letter] = await read_topic(broker.bootstrap, dlq, 1)
    rec = orjson.loads(letter.value)
    assert rec["hook"] == "crm" and rec["event"] == "Answered" and rec["event_id"] == "e-404"
    assert rec["error"]["kind"] == "http_status" and rec["error"]["status"] == 404
    assert rec["attempts"] == 1
    assert rec["payload"] == {"event": "Answered", "id": "e-404"}
    assert letter.key == b"c1"
    assert len(receiver.at("/gone-wrong")) == 1  # a 404 is not retried


async def test_503_then_200_is_delivered_with_one_webhook_id(
        broker: Any, topic: str, receiver: Receiver, tmp_path: Path) -> None:
    receiver.plan["/flaky"].extend([503, (503, {"Retry-After": "0"}), 200])
    cfg = write_config(tmp_path, broker.bootstrap, topic,
                       [hook("flaky", "Answered", receiver.url("/flaky"),
                             signing={"secret": WHSEC},
                             retry={"schedule": ["50ms", "50ms", "50ms"]})])
    await produce(broker.bootstrap, topic, [(b"c1", {"event": "Answered", "id": "e-503"})])
    async with running(cfg) as daemon:
        await receiver.wait_for(3, "/flaky")
        await until(lambda: daemon.dispatcher is not None
                    and daemon.dispatcher.counters.delivered == 1)
    ids = {r.headers["webhook-id"] for r in receiver.at("/flaky")}
    assert ids == {webhook_id("e-503", "flaky")}
    stamps = [r.headers["webhook-timestamp"] for r in receiver.at("/flaky")]
    for req in receiver.at("/flaky"):
        Webhook(WHSEC).verify(req.body, req.headers)  # re-signed on every attempt
    assert len(stamps) == 3


async def test_offsets_are_committed_once_deliveries_are_final(
        broker: Any, topic: str, receiver: Receiver, tmp_path: Path) -> None:
    group = unique("g")
    cfg = write_config(tmp_path, broker.bootstrap, topic,
                       [hook("h", "Joined", receiver.url("/ok"))], group=group)
    await produce(broker.bootstrap, topic,
                  [(f"k{i}".encode(), {"event": "Joined", "id": f"e{i}"}) for i in range(40)])
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        await receiver.wait_for(40)
        await until(lambda: daemon.source.tracker.committable() == {} and
                    daemon.source.tracker.in_flight() == 0)
    offsets = await committed(broker.bootstrap, group, topic, PARTITIONS)
    assert sum(max(o, 0) for o in offsets.values()) == 40
