"""The events hookd knows (../shared/events.md), as data and as JSON Schema."""

from __future__ import annotations

from typing import Any

_S, _I, _N, _B, _O = "string", "integer", "number", "boolean", "object"
ENVELOPE = {"event": _S, "id": _S, "time": _S, "domain": _S, "environment": _S}

_QUEUE_ALL = {"queue_id": _I, "queue_name": _S, "queue_type": _S, "channel": _S,
              "attempt_id": _I, "destination": _S, "reporting": _B, "agent_call_id": _S,
              "member_call_id": _S, "variables": _O}
_QUEUE_AGENT = {"agent_name": _S, "agent_id": _I, "user_id": _I, "agent_extension": _S,
                "member_name": _S, "member_id": _I, "attempt_number": _I, "talk_sec": _N,
                "call_sec": _N, "amd_result": _S}
_ENDING = {"cause": _S, "sip_code": _N}


def _queue(name: str) -> dict[str, str]:
    fields = dict(_QUEUE_ALL)
    if name != "Joined":
        fields |= _QUEUE_AGENT
    if name not in ("Joined", "Missed"):
        fields["bridged_sec"] = _N
    if name == "Leaving":
        fields |= {"result": _S} | _ENDING
    if name == "Processing":
        fields |= _ENDING
    return fields


_CALL = dict.fromkeys(
    ["direction", "uuid", "type", "created_at", "contact_number", "caller_id_number",
     "destination", "start_at", "answer_at", "environment_name", "user_fullname",
     "user_name", "extension_username", "cause", "sip_status", "recording_url",
     "duration_time", "billing_duration_time", "did_number", "did_name",
     "queue_disposition", "ivr_name", "call_state", "queue_name"], _S) | {
    "duration": _N, "ring_duration": _N, "billing_duration": _N}
CALL_FIELDS: tuple[str, ...] = tuple(_CALL)
"""The fields of every call event (``Call:*``, ``Ivr:*``), in catalogue order."""

QUEUE_EVENTS = ("Joined", "Offering", "Answered", "Active", "Bridged", "Missed",
                "Processing", "Leaving")
CALL_EVENTS = ("Call:Ringing", "Call:Answer", "Call:Hangup", "Call:Reporting",
               "Ivr:Start", "Ivr:End")

EVENTS: dict[str, tuple[str, dict[str, str]]] = {
    **{n: ("queue", _queue(n)) for n in QUEUE_EVENTS},
    **{n: ("call", _CALL) for n in CALL_EVENTS},
    "AbandonedConversation": ("service", {"customer_phone": _S, "time_in_queue_sec": _N,
                                          "timestamp": _S, "queue": _S}),
    "OutboundCall": ("service", {"agentID": _S, "targetPhoneNumber": _S, "Timestamp": _S}),
    "WorkItemClosed": ("service", {
        "id": _S, "mediaType": _S, "isOutbound": _B, "createdAt": _S, "closedAt": _S,
        "agent": _O, "customerIdentifier": _S, "customerId": _S,
        "primaryConversationId": _S, "completionCode": _S, "notes": _S, "result": _S}),
}


def events_schema() -> dict[str, Any]:
    """One JSON Schema with a definition per known event; other fields are allowed."""
    defs: dict[str, Any] = {}
    for name, (family, fields) in EVENTS.items():
        nullable = family == "call"  # any call field may be null
        props: dict[str, Any] = {
            k: {"type": [t, "null"] if nullable else t} for k, t in (ENVELOPE | fields).items()}
        props["event"] = {"const": name}
        defs[name] = {"type": "object", "title": name, "x-family": family,
                      "properties": props, "required": ["event"],
                      "additionalProperties": True}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "hookd events",
        "description": "Known contact-center events; any other name is a custom event.",
        "anyOf": [*({"$ref": f"#/$defs/{n}"} for n in defs), {"$ref": "#/$defs/custom"}],
        "$defs": defs | {"custom": {"type": "object", "title": "custom event",
                                    "properties": {"event": {"type": "string", "minLength": 1}},
                                    "required": ["event"], "additionalProperties": True}},
    }
