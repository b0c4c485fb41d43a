"""Realistic contact-center traffic: the simulator behind ``hookd-sim`` (``hookd.dev.simcli``).

Calls, chats and work items move through queues the way a contact center's do, several
dozen at once, their events interleaved in (simulated) time and keyed by the call id:

* inbound voice calls: ``Call:Ringing``, often an IVR (``Ivr:Start``/``Ivr:End``), then
  the queue: ``Joined`` → ``Offering`` (→ ``Missed`` → ``Offering`` …) → ``Answered`` →
  ``Bridged`` → ``Processing`` → ``Leaving``, with ``Call:Answer``, ``Call:Hangup`` and
  ``Call:Reporting`` around it; some callers give up while queued (``Leaving`` with
  ``result: abandoned`` and an ``AbandonedConversation`` service hook), some are never
  answered (``result: cancel``);
* chats and e-mail tasks: the same queue flow with ``Active`` for chats, closed by a
  ``WorkItemClosed`` service hook;
* agents' outbound calls: ``OutboundCall``, then the call events;
* a predictive dialer: queue events and ``CUSTOM->engine::dialer_member_end``.

Field names and types are those of ``events.md`` (``hookd schema events``). The same seed
gives the same events, byte for byte, whatever the rate; ``--rate 0`` produces as fast as
the broker takes them. Runs are bounded: ``--count`` events and/or ``--duration`` seconds.

    hookd-sim --bootstrap 127.0.0.1:9092 --topic cc.events --rate 200 --duration 60
    hookd-sim --dry-run --count 20          # print the events (JSON lines), send nothing
"""

from __future__ import annotations

import heapq
import math
import random
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from hookd.dev.world import (
    BASE_TIME,
    CHAT,
    CODES,
    DIALER,
    DIALER_END,
    DIDS,
    EMAIL,
    FIRST,
    INBOUND,
    IVRS,
    LAST,
    Agent,
    Queue,
    SimEvent,
    Step,
    clock,
    hms,
    rfc3339,
)
from hookd.events.catalogue import CALL_FIELDS

__all__ = ["BASE_TIME", "DIALER_END", "SimEvent", "Simulator"]


class Simulator:
    """An endless, reproducible stream of events from ``concurrency`` calls in progress.

    Each call is a flow (a generator) that pauses and emits events; a scheduler runs the
    flows in simulated time, from ``start``. The ``time`` of an event is its simulated
    moment; events come out in simulated-time order, so different calls interleave as
    they would on a real topic while each call's own events keep their order.
    """

    def __init__(self, seed: int = 1, *, concurrency: int = 40, start: datetime = BASE_TIME,
                 domain: str = "acme") -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.rng = random.Random(seed)
        self.concurrency = concurrency
        self.domain = domain
        self.now = start.timestamp()
        self.agents = [Agent(100 + i, 1000 + i, f"{FIRST[i % 16]} {LAST[(i * 5) % 14]}",
                              f"{1100 + i}", f"{FIRST[i % 16].lower()}{i}")
                       for i in range(40)]
        self._seq = 0
        self._attempt = 80_000

    # -- the stream -------------------------------------------------------------------------
    def events(self) -> Iterator[SimEvent]:
        """Endless; ``itertools.islice`` or :meth:`take` bound it."""
        heap: list[tuple[float, int, str, Iterator[Step]]] = []
        for _ in range(self.concurrency):
            self._start_call(heap, self.now + self.rng.expovariate(1 / 3.0))
        while True:
            due, _, key, flow = heap[0]
            self.now = due
            step = next(flow, None)
            if step is None:  # the call is over; another one comes in
                self._start_call(heap, due + self.rng.expovariate(1 / 2.0), replace=True)
                continue
            if isinstance(step, float | int):
                heapq.heapreplace(heap, (due + step, self._next(), key, flow))
                continue
            name, fields = step
            heapq.heapreplace(heap, (due, self._next(), key, flow))
            yield SimEvent(key, name, {"event": name, "id": self._uuid(),
                                       "time": rfc3339(due), "domain": self.domain, **fields})

    def take(self, count: int) -> list[SimEvent]:
        it = self.events()
        return [next(it) for _ in range(count)]

    def _start_call(self, heap: list[tuple[float, int, str, Iterator[Step]]], at: float,
                    replace: bool = False) -> None:
        key = self._uuid()
        kind = self.rng.choices(("inbound", "chat", "email", "outbound", "dialer"),
                                weights=(55, 15, 8, 12, 10))[0]
        entry = (at, self._next(), key, getattr(self, f"_{kind}")(key))
        if replace:
            heapq.heapreplace(heap, entry)
        else:
            heapq.heappush(heap, entry)

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # -- building blocks --------------------------------------------------------------------
    def _phone(self) -> str:
        return f"+1555{self.rng.randrange(2_000_000, 9_999_999):07d}"

    def _person(self) -> str:
        return f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}"

    def _env(self) -> dict[str, Any]:
        return {"environment": "production" if self.rng.random() < 0.9 else "staging"}

    def _variables(self) -> dict[str, Any]:
        return {"priority": self.rng.choices(("normal", "high", "vip"), (80, 15, 5))[0],
                "lang": self.rng.choices(("en", "es", "fr"), (70, 20, 10))[0],
                "crm_id": f"C{self.rng.randrange(10_000, 99_999)}"}

    @staticmethod
    def _call_fields(call: dict[str, Any], env: dict[str, Any], **changes: Any
                     ) -> dict[str, Any]:
        """Every field of a call/IVR event (null while unknown), plus the environment."""
        call.update(changes)
        return {**env, **{name: call.get(name) for name in CALL_FIELDS}}

    def _queue_event(self, name: str, q: Queue, member: dict[str, Any],
                     agent: Agent | None = None, **more: Any) -> dict[str, Any]:
        """The fields of a queue event, as events.md lists them for `name`."""
        fields: dict[str, Any] = {
            "queue_id": q.id, "queue_name": q.name, "queue_type": q.type,
            "channel": q.channel, "attempt_id": member["attempt_id"],
            "destination": member["destination"], "reporting": q.reporting,
            "agent_call_id": member["agent_call_id"],
            "member_call_id": member["call_id"], "variables": member["variables"]}
        if name != "Joined":
            fields.update({
                "agent_name": agent.name if agent else "", "agent_id": agent.id if agent else 0,
                "user_id": agent.user_id if agent else 0,
                "agent_extension": agent.extension if agent else "",
                "member_name": member["name"], "member_id": member["member_id"],
                "attempt_number": member["attempt_number"],
                "talk_sec": round(member["talk_sec"], 1),
                "call_sec": round(self.now - member["start"], 1),
                "amd_result": member["amd_result"]})
            if name != "Missed":
                fields["bridged_sec"] = round(member["bridged_sec"], 1)
        fields.update(more)
        return fields

    def _member(self, call_id: str, destination: str) -> dict[str, Any]:
        self._attempt += 1
        return {"call_id": call_id, "destination": destination, "name": self._person(),
                "member_id": self.rng.randrange(5000, 60_000), "attempt_id": self._attempt,
                "attempt_number": 1, "talk_sec": 0.0, "bridged_sec": 0.0, "agent_call_id": "",
                "amd_result": "HUMAN", "start": self.now, "variables": self._variables(),
                "outcome": None, "agent": None, "waited": 0.0, "talk": 0.0}

    def _queue_flow(self, q: Queue, member: dict[str, Any], patience: float,
                    answered_name: str, call: dict[str, Any] | None = None,
                    env: dict[str, Any] | None = None) -> Iterator[Step]:
        """Joined → (Offering → Missed)* → Offering → Answered|Active → Bridged →
        [Processing] → Leaving; or Joined … → Leaving, abandoned (the caller's patience ran
        out) or cancelled (offered three times, never answered). For a voice call (`call`
        given) the agent's answer and the hang-up are also call events."""
        rng = self.rng
        waited = 0.0
        yield "Joined", self._queue_event("Joined", q, member)
        for offer in range(4):
            wait = rng.expovariate(1 / 20.0)
            if offer == 3 or waited + wait > patience:
                abandoned = waited + wait > patience
                wait = max(patience - waited, 0.0) if abandoned else wait
                yield wait
                member["waited"] = waited + wait
                member["outcome"] = "abandoned" if abandoned else "cancel"
                cause, sip = ("ORIGINATOR_CANCEL", 487) if abandoned else ("NO_ANSWER", 480)
                yield "Leaving", self._queue_event("Leaving", q, member, None,
                                                   result=member["outcome"], cause=cause,
                                                   sip_code=sip)
                return
            yield wait
            waited += wait
            agent = rng.choice(self.agents)
            member["agent_call_id"] = self._uuid()
            yield "Offering", self._queue_event("Offering", q, member, agent)
            if rng.random() < 0.15:  # the agent lets it ring out
                yield 15.0
                waited += 15.0
                yield "Missed", self._queue_event("Missed", q, member, agent)
                member["agent_call_id"] = ""
                continue
            ring = rng.uniform(2.0, 9.0)
            yield ring
            member.update(waited=waited + ring, agent=agent, outcome="success")
            yield answered_name, self._queue_event(answered_name, q, member, agent)
            if call is not None and env is not None and not call.get("answer_at"):
                yield "Call:Answer", self._call_fields(call, env, answer_at=clock(self.now),
                                                       call_state="answered")
            yield 0.4
            yield "Bridged", self._queue_event("Bridged", q, member, agent)
            talk = rng.lognormvariate(math.log(180), 0.7)
            yield talk
            member.update(talk=talk, talk_sec=talk, bridged_sec=talk)
            if call is not None and env is not None:
                yield from self._hangup(call, env, "answer", "NORMAL_CLEARING", "answer", talk)
            if q.reporting:
                yield "Processing", self._queue_event("Processing", q, member, agent,
                                                      cause="NORMAL_CLEARING", sip_code=200)
                yield rng.uniform(10, 60)
            else:
                yield 0.3
            yield "Leaving", self._queue_event("Leaving", q, member, agent, result="success",
                                               cause="NORMAL_CLEARING", sip_code=200)
            return

    def _hangup(self, call: dict[str, Any], env: dict[str, Any], cause: str, sip_status: str,
                disposition: str | None, talk: float = 0.0) -> Iterator[Step]:
        duration = round(self.now - call["_start"], 1)
        billed = round(talk)
        yield "Call:Hangup", self._call_fields(
            call, env, duration=duration, ring_duration=call["_ring"], cause=cause,
            sip_status=sip_status, duration_time=hms(duration), billing_duration=billed,
            billing_duration_time=hms(billed), queue_disposition=disposition,
            call_state="hangup",
            recording_url=f"https://rec.acme.example/{call['uuid']}.mp3" if billed else None)

    def _reporting(self, call: dict[str, Any], env: dict[str, Any]) -> Iterator[Step]:
        yield self.rng.uniform(1.0, 5.0)
        yield "Call:Reporting", self._call_fields(call, env, call_state="reported")

    # -- scenarios: each a flow for one call id -------------------------------------------
    def _inbound(self, cid: str) -> Iterator[Step]:
        rng = self.rng
        did, did_name = rng.choice(DIDS)
        caller = self._phone()
        env = self._env()
        call: dict[str, Any] = {
            "_start": self.now, "_ring": 0, "direction": "incoming", "uuid": cid,
            "type": "did_to_que", "created_at": rfc3339(self.now), "contact_number": caller,
            "caller_id_number": caller, "destination": did, "start_at": clock(self.now),
            "did_number": did, "did_name": did_name, "environment_name": env["environment"]}
        q = rng.choice(INBOUND)
        yield "Call:Ringing", self._call_fields(call, env, call_state="ringing")
        call["_ring"] = ring = rng.randint(1, 4)
        yield float(ring)
        if rng.random() < 0.6:  # an IVR menu answers first
            yield "Call:Answer", self._call_fields(call, env, answer_at=clock(self.now),
                                                   call_state="answered")
            yield "Ivr:Start", self._call_fields(call, env, ivr_name=rng.choice(IVRS),
                                                 call_state="ivr")
            yield rng.uniform(5, 40)
            if rng.random() < 0.08:  # hung up in the menu
                yield "Ivr:End", self._call_fields(call, env, call_state="hangup")
                yield from self._hangup(call, env, "answer", "NORMAL_CLEARING", None)
                yield from self._reporting(call, env)
                return
            yield "Ivr:End", self._call_fields(call, env, call_state="queue")
            yield 0.2
        call["queue_name"] = q.name
        member = self._member(cid, caller)
        yield from self._queue_flow(q, member, rng.expovariate(1 / 90.0) + 10, "Answered",
                                    call, env)
        if member["outcome"] != "success":
            if member["outcome"] == "abandoned":
                yield 0.1
                yield "AbandonedConversation", {
                    "customer_phone": caller, "time_in_queue_sec": round(member["waited"]),
                    "timestamp": rfc3339(self.now), "queue": q.name}
            yield 0.2
            yield from self._hangup(call, env, "answer" if call.get("answer_at") else
                                    "no_answer", "ORIGINATOR_CANCEL",
                                    "abandoned" if member["outcome"] == "abandoned"
                                    else "timeout")
        else:
            agent: Agent = member["agent"]
            call.update(user_fullname=agent.name, user_name=agent.login,
                        extension_username=agent.extension)
        yield from self._reporting(call, env)

    def _chat(self, cid: str) -> Iterator[Step]:
        yield from self._work_item(cid, CHAT, "Active", "chat")

    def _email(self, cid: str) -> Iterator[Step]:
        yield from self._work_item(cid, EMAIL, "Answered", "email")

    def _work_item(self, cid: str, q: Queue, answered: str, media: str) -> Iterator[Step]:
        rng = self.rng
        created = self.now
        customer = f"{self._person().split()[0].lower()}{rng.randrange(100)}@mail.example"
        member = self._member(cid, customer)
        patience = 3600.0 if media == "email" else rng.expovariate(1 / 240.0) + 30
        yield from self._queue_flow(q, member, patience, answered)
        agent: Agent | None = member["agent"]
        if member["outcome"] != "success" or agent is None:
            return
        yield 0.5
        yield "WorkItemClosed", {
            "id": f"wi-{rng.randrange(1_000_000, 9_999_999)}", "mediaType": media,
            "isOutbound": False, "createdAt": rfc3339(created), "closedAt": rfc3339(self.now),
            "agent": {"id": f"agent-{agent.id}", "name": agent.name, "email": agent.email,
                      "phone": f"+1555{agent.extension}000"},
            "customerIdentifier": customer, "customerId": f"cust-{member['member_id']}",
            "primaryConversationId": cid, "completionCode": rng.choice(CODES),
            "notes": rng.choice(("", "customer satisfied", "sent a follow-up",
                                 "refund issued")),
            "result": rng.choice(("resolved", "resolved", "pending"))}

    def _outbound(self, cid: str) -> Iterator[Step]:
        rng = self.rng
        agent = rng.choice(self.agents)
        target = self._phone()
        env = self._env()
        yield "OutboundCall", {"agentID": f"agent-{agent.id}", "targetPhoneNumber": target,
                               "Timestamp": rfc3339(self.now)}
        yield 0.3
        call: dict[str, Any] = {
            "_start": self.now, "_ring": 0, "direction": "outgoing", "uuid": cid,
            "type": "user_to_pstn", "created_at": rfc3339(self.now), "contact_number": target,
            "caller_id_number": agent.extension, "destination": target,
            "start_at": clock(self.now), "environment_name": env["environment"],
            "user_fullname": agent.name, "user_name": agent.login,
            "extension_username": agent.extension}
        yield "Call:Ringing", self._call_fields(call, env, call_state="ringing")
        call["_ring"] = ring = rng.randint(3, 25)
        yield float(ring)
        if rng.random() < 0.65:
            yield "Call:Answer", self._call_fields(call, env, answer_at=clock(self.now),
                                                   call_state="answered")
            talk = rng.lognormvariate(math.log(120), 0.8)
            yield talk
            yield from self._hangup(call, env, "answer", "NORMAL_CLEARING", None, talk)
        else:
            busy = rng.random() < 0.3
            yield from self._hangup(call, env, "busy" if busy else "no_answer",
                                    "USER_BUSY" if busy else "NO_ANSWER", None)
        yield from self._reporting(call, env)

    def _dialer(self, cid: str) -> Iterator[Step]:
        rng = self.rng
        q = DIALER
        member = self._member(cid, self._phone())
        member["attempt_number"] = rng.randint(1, 3)
        if rng.random() < 0.35:  # nobody picked up
            yield "Joined", self._queue_event("Joined", q, member)
            yield rng.uniform(15, 30)
            yield "Leaving", self._queue_event("Leaving", q, member, None, result="cancel",
                                               cause="NO_ANSWER", sip_code=480)
            result = "no_answer"
        else:
            member["amd_result"] = "MACHINE" if rng.random() < 0.1 else "HUMAN"
            yield from self._queue_flow(q, member, 60.0, "Answered")
            result = str(member["outcome"])
        yield 0.1
        yield DIALER_END, {"member_id": member["member_id"], "result": result,
                           "attempts": member["attempt_number"], "queue_id": q.id,
                           "member_call_id": cid}
