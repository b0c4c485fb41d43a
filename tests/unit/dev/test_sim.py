"""The traffic simulator: reproducible, realistic flows per call id, fields per events.md."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime
from typing import Any

import orjson
import pytest

from hookd.dev.sim import DIALER_END, SimEvent, Simulator
from hookd.events.catalogue import EVENTS, QUEUE_EVENTS

COUNT = 6000
_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": (int, float),
                          "boolean": bool, "object": dict}


@pytest.fixture(scope="module")
def events() -> list[SimEvent]:
    return Simulator(seed=11).take(COUNT)


def by_key(events: list[SimEvent]) -> dict[str, list[SimEvent]]:
    flows: dict[str, list[SimEvent]] = defaultdict(list)
    for ev in events:
        flows[ev.key].append(ev)
    return flows


def test_same_seed_same_bytes_other_seed_other_events() -> None:
    one = [e.encoded() for e in Simulator(seed=5).take(2000)]
    two = [e.encoded() for e in Simulator(seed=5).take(2000)]
    other = [e.encoded() for e in Simulator(seed=6).take(2000)]
    assert one == two
    assert one != other


def test_every_family_appears(events: list[SimEvent]) -> None:
    names = {e.name for e in events}
    assert set(EVENTS) <= names  # queue, call/IVR and service-hook events
    assert DIALER_END in names
    results = {e.value.get("result") for e in events if e.name == "Leaving"}
    assert results == {"success", "abandoned", "cancel"}


def test_values_are_json_objects_with_envelope_and_unique_ids(events: list[SimEvent]) -> None:
    ids = set()
    previous = ""
    for ev in events:
        value = orjson.loads(ev.encoded())
        assert value["event"] == ev.name
        assert value["domain"] == "acme"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", value["time"])
        assert value["time"] >= previous  # simulated time never runs backwards
        previous = value["time"]
        ids.add(value["id"])
    assert len(ids) == len(events)


def check_type(name: str, field: str, value: Any, nullable: bool) -> None:
    if value is None:
        assert nullable, f"{name}.{field} is null"
        return
    expected = _TYPES[EVENTS[name][1][field]]
    assert isinstance(value, expected), f"{name}.{field} = {value!r}"
    if expected is not bool:
        assert not isinstance(value, bool), f"{name}.{field} = {value!r}"


def test_fields_are_those_of_events_md(events: list[SimEvent]) -> None:
    """Each known event carries every field events.md lists for it, with its type; queue
    events carry no field meant for another queue event (no agent on Joined, no
    bridged_sec on Missed, result only on Leaving, cause and sip_code on Leaving and
    Processing)."""
    envelope = {"event", "id", "time", "domain", "environment"}
    for ev in events:
        if ev.name not in EVENTS:
            continue
        family, fields = EVENTS[ev.name]
        for field in fields:
            assert field in ev.value, f"{ev.name} lacks {field}"
            check_type(ev.name, field, ev.value[field], nullable=family == "call")
        if family == "queue":
            assert set(ev.value) - envelope == set(fields), ev.name
        if family == "call":
            assert ev.value["environment"] in ("production", "staging")


def test_keys_are_call_ids(events: list[SimEvent]) -> None:
    for ev in events:
        family = EVENTS.get(ev.name, ("custom", {}))[0]
        if family == "queue" or ev.name == DIALER_END:
            assert ev.value["member_call_id"] == ev.key
        elif family == "call":
            assert ev.value["uuid"] == ev.key
        elif ev.name == "WorkItemClosed":
            assert ev.value["primaryConversationId"] == ev.key


QUEUE_FLOW = re.compile(
    r"Joined (Offering Missed )*"
    r"(Offering (Answered|Active) Bridged (Processing )?Leaving:success"
    r"|Leaving:(abandoned|cancel))")


def test_queue_flows_in_order_per_call(events: list[SimEvent]) -> None:
    """Calls that started in the first half of the sample have finished by its end."""
    started_early = {e.key for e in events[:COUNT // 2]}
    complete = 0
    for key, flow in by_key(events).items():
        steps = [f"{e.name}:{e.value['result']}" if e.name == "Leaving" else e.name
                 for e in flow if e.name in QUEUE_EVENTS]
        if key not in started_early or not steps:
            continue
        assert QUEUE_FLOW.fullmatch(" ".join(steps)), (key, steps)
        complete += 1
        assert len({e.value["queue_id"] for e in flow if e.name in QUEUE_EVENTS}) == 1
        if "Processing" in steps:  # only queues with post-processing have it
            assert all(e.value["reporting"] for e in flow if e.name in QUEUE_EVENTS)
    assert complete > 300


def test_call_events_in_order_per_call(events: list[SimEvent]) -> None:
    ended = 0
    for key, flow in by_key(events).items():
        names = [e.name for e in flow if e.name.startswith(("Call:", "Ivr:"))]
        if not names or names[0] != "Call:Ringing":
            continue
        assert names.count("Call:Ringing") == 1, key
        if "Ivr:End" in names:
            assert names.index("Ivr:Start") < names.index("Ivr:End")
        if "Call:Hangup" in names:
            ended += 1
            hangup = names.index("Call:Hangup")
            assert all(n != "Call:Answer" for n in names[hangup:])
            assert names[hangup + 1:] in ([], ["Call:Reporting"])
            report = next(e for e in flow if e.name == "Call:Hangup").value
            assert report["cause"] in ("answer", "busy", "no_answer")
            assert re.fullmatch(r"\d\d:\d\d:\d\d", report["duration_time"])
        queue = [e.name for e in flow if e.name in QUEUE_EVENTS]
        if "Answered" in queue and "Call:Hangup" in names:  # the agent answered the call
            assert "Call:Answer" in names
        if "Call:Reporting" in names:
            assert names[-1] == "Call:Reporting"
    assert ended > 200


def test_service_hooks_follow_their_calls(events: list[SimEvent]) -> None:
    for flow in by_key(events).values():
        names = [e.name for e in flow]
        if "AbandonedConversation" in names:
            leaving = [e for e in flow if e.name == "Leaving"]
            assert leaving and leaving[-1].value["result"] == "abandoned"
            assert names.index("Leaving") < names.index("AbandonedConversation")
        if "WorkItemClosed" in names:
            assert names[-1] == "WorkItemClosed"
            closed = flow[-1].value
            assert closed["mediaType"] in ("chat", "email")
            assert set(closed["agent"]) == {"id", "name", "email", "phone"}
            assert closed["closedAt"] >= closed["createdAt"]
        if "OutboundCall" in names:
            assert names[0] == "OutboundCall"
            assert flow[1].value["direction"] == "outgoing"
        if DIALER_END in names:
            assert names[-1] == DIALER_END
            assert flow[-1].value["result"] in ("success", "no_answer", "abandoned", "cancel")


def test_many_calls_interleave(events: list[SimEvent]) -> None:
    first_hundred = {e.key for e in events[:100]}
    assert len(first_hundred) >= 10


def test_start_time_is_configurable() -> None:
    start = datetime.fromisoformat("2030-01-02T03:04:05+00:00")
    first = Simulator(seed=1, start=start).take(1)[0]
    assert first.value["time"].startswith("2030-01-02T03:04")
