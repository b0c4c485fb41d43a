"""hookd.cli.replay: from a dead letter (as hookd.kafka.deadletter writes it) back to a parked
delivery, which letters are skipped and why, and the ledger that keeps a letter from moving
twice. The Kafka side is in tests/integration/test_replay.py and test_retries.py."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, replace
from typing import Any

import orjson
import pytest

from hookd.cli.replay import Replayer, letter_to_parked
from hookd.cli.selection import Selection
from hookd.delivery.retries import ErrorKind
from hookd.kafka.deadletter import DeadLetter, Source
from hookd.kafka.parking import ParkingLot, read_parked
from hookd.kafka.replayed import REPLAY_OF_HEADER, Ledger, Moved, read_marker
from hookd.pipeline.runtime import Runtime, load_config
from tests.unit.conftest import WriteConfig


def letter(**changes: Any) -> DeadLetter:
    return replace(DeadLetter("crm", "ev-1", "Answered", {"event": "Answered", "call": "c-1"},
                              None, ErrorKind.HTTP_STATUS, 500, "HTTP 500: no", 3, 1.0, 2.0,
                              Source("cc.events", 1, 7), b"c-1"), **changes)


def slim() -> DeadLetter:
    """A letter too big to keep whole: its payload left out, with a note."""
    return letter(payload={"event": "Answered", "blob": "x" * 5000}).slimmed(1000)


def test_a_letter_becomes_the_delivery_it_was() -> None:
    parked = letter_to_parked(orjson.loads(letter().to_json()), b"c-1")
    assert (parked.hook, parked.event.name, parked.event.id) == ("crm", "Answered", "ev-1")
    assert parked.event.payload == {"event": "Answered", "call": "c-1"}
    assert (parked.event.meta.topic, parked.event.meta.partition,
            parked.event.meta.offset, parked.event.meta.key) == ("cc.events", 1, 7, "c-1")
    assert (parked.key, parked.attempts) == (b"c-1", 0)


def test_a_letter_whose_event_was_left_out_is_not_replayed_as_an_empty_event() -> None:
    doc = orjson.loads(slim().to_json())
    assert doc["payload"] is None
    with pytest.raises(ValueError, match="not kept in the letter"):
        letter_to_parked(doc, b"c-1")


@dataclass
class Record:
    value: bytes
    key: bytes | None = b"c-1"
    offset: int = 0
    partition: int = 0
    timestamp: int | None = 1_000


class Producer:
    """A transactional producer's calls, recorded; `fail_commit`: its commit raises."""

    def __init__(self, fail_commit: Exception | None = None) -> None:
        self.sent: list[tuple[str, bytes, Any]] = []
        self.calls: list[str] = []
        self.fail_commit = fail_commit

    async def begin_transaction(self) -> None:
        self.calls.append("begin")

    async def send(self, topic: str, value: bytes, key: Any = None,
                   headers: Any = None) -> asyncio.Future[None]:
        self.sent.append((topic, value, headers))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def commit_transaction(self) -> None:
        self.calls.append("commit")
        if self.fail_commit is not None:
            raise self.fail_commit

    async def abort_transaction(self) -> None:
        self.calls.append("abort")


@pytest.fixture
def runtime(write_config: WriteConfig) -> Runtime:
    return load_config(write_config("""
        hooks:
          - id: crm
            event: Answered
            request: {url: "http://127.0.0.1/crm"}
        """).main, environ={})


async def replayer(runtime: Runtime, ledger: Ledger | None = None, dry_run: bool = False,
                   selection: Selection | None = None) -> tuple[Replayer, io.StringIO]:
    lot = ParkingLot(None, None, "hookd.retry", 4)
    await lot.ensure_tiers([30.0])
    out = io.StringIO()
    return Replayer(runtime, selection or Selection(), ledger or Ledger(), lot, None,
                    dry_run, out), out


@pytest.mark.parametrize(("value", "why"), [
    (b"not json", "not a delivery"),
    (b"[1, 2]", "not a delivery"),
    (orjson.dumps({"hook": "gone", "event_id": "e", "source": {}}), "no such hook"),
    (slim().to_json(), "not kept in the letter"),
    (orjson.dumps({"hook": "crm", "event_id": "e"}), "source"),  # not a letter hookd wrote
    (letter(hook=None, event_id=None, kind=ErrorKind.DECODE).to_json(), "kind=decode"),
])
async def test_what_cannot_be_replayed_is_skipped_and_said(runtime: Runtime, value: bytes,
                                                           why: str) -> None:
    r, out = await replayer(runtime)
    r.take(Record(value))
    assert (len(r.pending), r.tally.skipped) == (0, 1)
    assert why in out.getvalue()


async def test_a_replayable_letter_is_parked_with_its_marker_in_one_transaction(
        runtime: Runtime) -> None:
    r, out = await replayer(runtime, selection=Selection(hooks=frozenset({"crm"})))
    r.take(Record(letter().to_json(), offset=7, partition=1))
    r.take(Record(letter(hook="other-hook").to_json(), offset=8))  # not selected
    producer = Producer()
    await r.flush(producer, "hookd.dlq.replayed", "hookd.dlq")
    assert producer.calls == ["begin", "commit"]
    (topic, value, headers), (ledger, marker, _) = producer.sent
    assert topic == "hookd.retry.30s" and ledger == "hookd.dlq.replayed"
    assert read_parked(value)[0].event.id == "ev-1"
    assert (REPLAY_OF_HEADER, b"hookd.dlq/1/7") in headers
    assert read_marker(marker) == Moved(1, 7, "crm", "ev-1")
    assert r.ledger.holds(Moved(1, 7, "crm", "ev-1"))
    assert (r.tally.moved, r.tally.read, r.tally.skipped) == (1, 2, 0)
    assert "replayed: hook=crm event=Answered event_id=ev-1 error=http_status status=500 " \
           "letter=1/7" in out.getvalue()


async def test_a_letter_in_the_ledger_is_not_moved_again(runtime: Runtime) -> None:
    ledger = Ledger()
    ledger.add(Moved(0, 7, "crm", "ev-1"))
    r, _ = await replayer(runtime, ledger)
    r.take(Record(letter().to_json(), offset=7))
    r.take(Record(letter().to_json(), offset=9))  # the same event, dead-lettered again
    assert [m.moved.offset for m in r.pending] == [9]
    assert r.tally.before == 1


def test_a_marker_names_its_letter_by_hook_and_event_too() -> None:
    """A dead-letter topic made anew starts its offsets over: its new letters are not the
    old topic's, although they lie at the same offsets."""
    ledger = Ledger()
    ledger.add(Moved(0, 7, "crm", "ev-1"))
    assert ledger.holds(Moved(0, 7, "crm", "ev-1"))
    assert not ledger.holds(Moved(0, 7, "crm", "ev-2"))
    assert not ledger.holds(Moved(0, 7, "erp", "ev-1"))
    assert not ledger.holds(Moved(1, 7, "crm", "ev-1"))
    assert read_marker(b"not json") is None and read_marker(b'{"partition": 1}') is None


async def test_a_failed_transaction_moves_nothing_and_is_aborted(runtime: Runtime) -> None:
    from aiokafka.errors import KafkaTimeoutError

    from hookd.cli.replay import ReplayStopped

    r, out = await replayer(runtime)
    r.take(Record(letter().to_json(), offset=7))
    producer = Producer(fail_commit=KafkaTimeoutError())
    with pytest.raises(ReplayStopped, match="writing to Kafka failed"):
        await r.flush(producer, "hookd.dlq.replayed", "hookd.dlq")
    assert producer.calls == ["begin", "commit", "abort"]
    assert (r.tally.moved, len(r.ledger)) == (0, 0)
    assert "replayed:" not in out.getvalue()


async def test_a_dry_run_counts_and_moves_nothing(runtime: Runtime) -> None:
    r, out = await replayer(runtime, dry_run=True)
    r.take(Record(letter().to_json(), offset=7))
    assert (r.pending, r.tally.moved) == ([], 1)
    r.tally.print(True, out)
    assert "would replay 1 dead letter(s), 0 replayed before, skipped 0 (1 read)" \
        in out.getvalue()


async def test_limit_stops_taking_letters(runtime: Runtime) -> None:
    r, _ = await replayer(runtime)
    r.limit = 2
    for offset in range(5):
        r.take(Record(letter().to_json(), offset=offset))
    assert [m.moved.offset for m in r.pending] == [0, 1] and r.full


class Admin:
    """The two admin calls earlier_replays makes, answered from `groups`."""

    def __init__(self, groups: dict[str, dict[tuple[str, int], int]]) -> None:
        self.groups = groups

    async def list_consumer_groups(self) -> list[tuple[str, str]]:
        return [(g, "consumer") for g in self.groups]

    async def list_consumer_group_offsets(self, group: str) -> dict[Any, Any]:
        from aiokafka import TopicPartition
        from aiokafka.structs import OffsetAndMetadata

        return {TopicPartition(t, p): OffsetAndMetadata(o, "")
                for (t, p), o in self.groups[group].items()}


async def test_what_replays_before_the_ledger_committed_counts_as_moved() -> None:
    from hookd.kafka.replayed import earlier_replays

    admin = Admin({"hookd.replay": {("hookd.dlq", 0): 5, ("other", 1): 99},
                   "hookd.replay.crm": {("hookd.dlq", 1): 3},
                   "hookd": {("hookd.dlq", 1): 50}, "hookd.retry": {("hookd.dlq", 1): 50}})
    marks = await earlier_replays(admin, "hookd", "hookd.dlq")
    assert marks == {None: {0: 5}, "crm": {1: 3}}
    ledger = Ledger(marks)
    assert ledger.holds(Moved(0, 4, "erp", "e"))  # every hook's, before offset 5
    assert not ledger.holds(Moved(0, 5, "erp", "e"))
    assert ledger.holds(Moved(1, 2, "crm", "e"))  # crm's, before 3 on partition 1
    assert not ledger.holds(Moved(1, 2, "erp", "e"))
    assert not ledger.holds(Moved(1, 3, "crm", "e"))


async def test_without_transactions_each_delivery_is_parked_before_its_marker(
        runtime: Runtime) -> None:
    """A broker without transactions (tansu): a kill between the two writes moves the letter
    again at the next replay, never loses it."""
    r, _ = await replayer(runtime)
    r.atomic = False
    r.take(Record(letter().to_json(), offset=7))
    r.take(Record(letter(event_id="ev-2").to_json(), offset=8))
    producer = Producer()
    await r.flush(producer, "hookd.dlq.replayed", "hookd.dlq")
    assert producer.calls == []
    assert [t for t, _, _ in producer.sent] == ["hookd.retry.30s"] * 2 + ["hookd.dlq.replayed"] * 2
    assert r.tally.moved == 2
