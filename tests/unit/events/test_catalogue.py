"""The known events (events.md) as data and JSON Schema."""

from __future__ import annotations

import pytest

from hookd.events.catalogue import CALL_EVENTS, EVENTS, QUEUE_EVENTS, events_schema

SERVICE = ("AbandonedConversation", "OutboundCall", "WorkItemClosed")


def test_every_family_is_known() -> None:
    assert QUEUE_EVENTS == ("Joined", "Offering", "Answered", "Active", "Bridged", "Missed",
                            "Processing", "Leaving")
    assert CALL_EVENTS == ("Call:Ringing", "Call:Answer", "Call:Hangup", "Call:Reporting",
                           "Ivr:Start", "Ivr:End")
    assert set(EVENTS) == {*QUEUE_EVENTS, *CALL_EVENTS, *SERVICE}
    assert {EVENTS[n][0] for n in QUEUE_EVENTS} == {"queue"}
    assert {EVENTS[n][0] for n in CALL_EVENTS} == {"call"}
    assert {EVENTS[n][0] for n in SERVICE} == {"service"}


@pytest.mark.parametrize(("name", "present", "absent"), [
    pytest.param("Joined", ["queue_id", "channel", "member_call_id", "variables"],
                 ["agent_name", "talk_sec", "bridged_sec", "result"], id="joined"),
    pytest.param("Answered", ["agent_name", "agent_id", "talk_sec", "bridged_sec"],
                 ["result", "cause", "sip_code"], id="answered"),
    pytest.param("Missed", ["agent_name", "talk_sec"], ["bridged_sec", "result"], id="missed"),
    pytest.param("Leaving", ["result", "cause", "sip_code", "bridged_sec"], [], id="leaving"),
    pytest.param("Processing", ["cause", "sip_code"], ["result"], id="processing"),
    pytest.param("Call:Reporting", ["uuid", "billing_duration", "recording_url"], ["queue_id"],
                 id="call"),
    pytest.param("WorkItemClosed", ["agent", "isOutbound", "completionCode"], [], id="workitem"),
])
def test_fields_per_event(name: str, present: list[str], absent: list[str]) -> None:
    fields = EVENTS[name][1]
    assert all(f in fields for f in present), present
    assert not any(f in fields for f in absent), absent


def test_field_types() -> None:
    queue = EVENTS["Leaving"][1]
    assert (queue["queue_id"], queue["talk_sec"], queue["reporting"], queue["variables"]) == (
        "integer", "number", "boolean", "object")
    assert EVENTS["WorkItemClosed"][1]["isOutbound"] == "boolean"


def test_events_schema() -> None:
    schema = events_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    defs = schema["$defs"]
    assert set(defs) == {*EVENTS, "custom"}
    assert len(schema["anyOf"]) == len(EVENTS) + 1
    assert {"$ref": "#/$defs/custom"} in schema["anyOf"]
    answered = defs["Answered"]
    assert answered["properties"]["event"] == {"const": "Answered"}
    assert answered["properties"]["queue_id"] == {"type": "integer"}
    assert answered["properties"]["domain"] == {"type": "string"}
    assert answered["required"] == ["event"]
    assert answered["additionalProperties"] is True
    assert answered["x-family"] == "queue"
    assert defs["Call:Hangup"]["properties"]["duration"] == {"type": ["number", "null"]}
    assert defs["custom"]["properties"]["event"] == {"type": "string", "minLength": 1}
