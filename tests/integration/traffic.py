"""Deterministic mixed traffic from the seed families, keyed by call id."""

from __future__ import annotations

import random
from typing import Any

QUEUE_FLOW = ["Joined", "Offering", "Answered", "Bridged", "Processing", "Leaving"]


def mixed_events(count: int, seed: int = 7) -> list[tuple[bytes, dict[str, Any]]]:
    """`count` events: queue call flows, call/IVR events and service hooks, in key order."""
    rng = random.Random(seed)
    out: list[tuple[bytes, dict[str, Any]]] = []
    call = 0
    while len(out) < count:
        call += 1
        cid = f"call-{call}"
        family = call % 3
        if family == 0:
            for step, name in enumerate(QUEUE_FLOW):
                out.append((cid.encode(), {
                    "event": name, "id": f"{cid}-{step}", "queue_id": rng.choice([7, 8]),
                    "queue_name": "Support", "channel": rng.choice(["call", "chat"]),
                    "member_call_id": cid, "agent_name": f"agent-{rng.randint(1, 9)}",
                    "step": step, "talk_sec": step * 10, "variables": {"seq": step}}))
        elif family == 1:
            for step, name in enumerate(["Call:Ringing", "Call:Answer", "Call:Hangup"]):
                out.append((cid.encode(), {
                    "event": name, "id": f"{cid}-{step}", "uuid": cid, "step": step,
                    "direction": "incoming", "caller_id_number": f"+1555{call:07d}",
                    "environment": rng.choice(["production", "staging"])}))
        else:
            out.append((cid.encode(), {
                "event": "WorkItemClosed", "id": f"{cid}-0", "step": 0, "mediaType": "email",
                "isOutbound": False, "agent": {"id": "a1", "name": "Dana"}}))
    return out[:count]
