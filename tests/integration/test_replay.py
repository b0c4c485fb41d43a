"""`hookd replay` by selection on a real broker: counts first (--dry-run), only the selection
moves and is delivered, a second selection finds what the first left, and a replay killed
(kill -9) in the middle of a transaction, run again, moves nothing twice."""

from __future__ import annotations

import asyncio
import collections
import signal
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from hookd.cli import main as cli_main
from hookd.delivery.retries import ErrorKind
from hookd.kafka.deadletter import DeadLetter, KafkaDeadLetters, Source
from hookd.kafka.replayed import REPLAY_OF_HEADER, ledger_topic
from hookd.requests.signing import webhook_id
from tests.integration.broker import BROKER
from tests.integration.harness import hook, new_topic, running, unique, wait_ready, write_config
from tests.integration.receiver import Receiver

DLQ_PARTS = 2
DELIVERY = {"allow_networks": ["127.0.0.0/8"], "timeout": "2s",
            "retry": {"schedule": ["50ms", "1s"], "inline_max": "200ms", "jitter": 0.0}}
DAY = "2026-12-01"


def _at(hhmm: str) -> float:
    return datetime.fromisoformat(f"{DAY}T{hhmm}").replace(tzinfo=UTC).timestamp()


def _letter(hook_id: str | None, event_id: str, kind: ErrorKind, status: int | None,
            hhmm: str) -> DeadLetter:
    payload = None if hook_id is None else {"event": "Answered", "id": event_id}
    return DeadLetter(hook_id, event_id if hook_id else None, "Answered" if hook_id else None,
                      payload, None if hook_id else b"{", kind, status, "failed", 3,
                      _at(hhmm) - 60, _at(hhmm), Source("cc.events", 0, 1),
                      key=event_id.encode())


async def _dead_letters(bootstrap: str, topic: str, letters: list[DeadLetter]) -> None:
    """Written as the daemon writes them (KafkaDeadLetters)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sink = KafkaDeadLetters(producer, topic)
        for letter in letters:
            await sink.publish(letter)
    finally:
        await producer.stop()


async def _setup(broker: Any, receiver: Receiver, tmp_path: Path,
                 letters: list[DeadLetter]) -> tuple[Path, str, str]:
    """A config with hooks crm and erp (on the receiver), its own dead-letter topic holding
    `letters`, and its own retry tiers. Returns (config, dead-letter topic, 1s tier)."""
    topic = await new_topic(broker.bootstrap, 1, "rp")
    dlq = await new_topic(broker.bootstrap, DLQ_PARTS, "dlq")
    path = write_config(tmp_path, broker.bootstrap, topic,
                        [hook("crm", "Answered", receiver.url("/crm")),
                         hook("erp", "Answered", receiver.url("/erp"))],
                        dlq=dlq, group=unique("g"), delivery=DELIVERY)
    data = yaml.safe_load(path.read_text())
    data["kafka"]["retry_topic_prefix"] = prefix = unique("retry")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    await _dead_letters(broker.bootstrap, dlq, letters)
    return path, dlq, f"{prefix}.1s"


async def _committed_records(bootstrap: str, topic: str, settle: float = 1.0) -> list[Any]:
    """Every record of `topic` a read-committed consumer sees (none when it is missing)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=50,
                                isolation_level="read_committed", metadata_max_age_ms=500)
    await consumer.start()
    out: list[Any] = []
    try:
        quiet = 0.0
        while quiet < settle:
            batch = await consumer.getmany(timeout_ms=100)
            got = [r for records in batch.values() for r in records]
            out.extend(got)
            quiet = 0.0 if got else quiet + 0.1
    finally:
        await consumer.stop()
    return out


def _replay(cfg: Path, *args: str) -> Any:
    return asyncio.to_thread(cli_main, ["replay", "-c", str(cfg), *args])


LETTERS = [
    _letter("crm", "c1", ErrorKind.HTTP_STATUS, 503, "14:10"),
    _letter("crm", "c2", ErrorKind.HTTP_STATUS, 503, "14:50"),
    _letter("crm", "c3", ErrorKind.HTTP_STATUS, 404, "15:00"),
    _letter("crm", "c4", ErrorKind.TIMEOUT, None, "15:10"),
    _letter("crm", "c5", ErrorKind.HTTP_STATUS, 502, "16:00"),  # after --until
    _letter("erp", "e1", ErrorKind.HTTP_STATUS, 503, "14:20"),
    _letter("erp", "e2", ErrorKind.CONNECT, None, "14:40"),  # another kind
    _letter(None, "bad", ErrorKind.DECODE, None, "14:30"),  # a record, not a delivery
]
SELECTION = ["--since", f"{DAY}T14:00", "--until", f"{DAY}T15:30",
             "--error-kind", "http_status,timeout"]


async def test_a_dry_run_counts_the_selection_by_hook_kind_and_status_and_moves_nothing(
        broker: Any, receiver: Receiver, tmp_path: Path, capsys: Any) -> None:
    cfg, dlq, tier = await _setup(broker, receiver, tmp_path, LETTERS)
    assert await _replay(cfg, "--dry-run", *SELECTION) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "HOOK  KIND         STATUS  LETTERS  LAST ATTEMPTS (UTC)",
        "crm   http_status  404           1  2026-12-01T15:00:00.000Z to 2026-12-01T15:00:00.000Z",
        "crm   http_status  503           2  2026-12-01T14:10:00.000Z to 2026-12-01T14:50:00.000Z",
        "crm   timeout      -             1  2026-12-01T15:10:00.000Z to 2026-12-01T15:10:00.000Z",
        "erp   http_status  503           1  2026-12-01T14:20:00.000Z to 2026-12-01T14:20:00.000Z",
        "last attempts from 2026-12-01T14:10:00.000Z to 2026-12-01T15:10:00.000Z",
        "would replay 5 dead letter(s), 0 replayed before, skipped 0 (8 read)",
    ]
    assert await _replay(cfg, "--dry-run", "--hook", "erp", "--status", "5xx") == 0
    assert "would replay 1 dead letter(s)" in capsys.readouterr().out
    # nothing moved, nothing made: no ledger, no retry tier
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        assert not {ledger_topic(dlq), tier} & set(await admin.list_topics())
    finally:
        await admin.close()


async def test_only_the_selection_moves_and_a_later_selection_finds_the_rest(
        broker: Any, receiver: Receiver, tmp_path: Path, capsys: Any) -> None:
    cfg, _, tier = await _setup(broker, receiver, tmp_path, LETTERS)
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        assert await _replay(cfg, *SELECTION) == 0
        out = capsys.readouterr().out
        assert "replayed 5 dead letter(s), 0 replayed before, skipped 0 (8 read)" in out
        await receiver.wait_for(5, timeout=40)
        assert sorted(r.headers["webhook-id"] for r in receiver.at("/crm")) == sorted(
            webhook_id(e, "crm") for e in ("c1", "c2", "c3", "c4"))
        assert [r.headers["webhook-id"] for r in receiver.at("/erp")] == [
            webhook_id("e1", "erp")]
        # the same selection again: nothing moves
        assert await _replay(cfg, *SELECTION) == 0
        assert "replayed 0 dead letter(s), 5 replayed before" in capsys.readouterr().out
        # another selection finds what the first one left: erp's connect letter
        assert await _replay(cfg, "--hook", "erp") == 0
        assert "replayed 1 dead letter(s), 1 replayed before" in capsys.readouterr().out
        await receiver.wait_for(2, "/erp", timeout=40)
        # and everything else: c5; the decode letter cannot be replayed
        assert await _replay(cfg, "--dry-run") == 0
        out = capsys.readouterr().out
        assert "would replay 1 dead letter(s), 6 replayed before, skipped 1 (8 read)" in out
        assert "skipped: letter=" in out and "kind=decode" in out
    moved = [dict(r.headers)[REPLAY_OF_HEADER] for r in
             await _committed_records(broker.bootstrap, tier)]
    assert len(moved) == len(set(moved)) == 6


# `hookd replay` in a process of its own, two letters per transaction, each commit held back
# 0.3 s after its records were sent: a kill -9 lands in an open transaction
_SLOW_REPLAY = textwrap.dedent("""
    import asyncio, sys
    from aiokafka import AIOKafkaProducer
    import hookd.cli.replay
    hookd.cli.replay.TRANSACTION_LETTERS = 2
    commit = AIOKafkaProducer.commit_transaction
    async def slow_commit(self):
        await asyncio.sleep(0.3)
        await commit(self)
    AIOKafkaProducer.commit_transaction = slow_commit
    from hookd.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.skipif(BROKER == "tansu", reason="tansu has no transactions (BROKER_NOTES.md): "
                    "replay moves without them there, and a kill can move a letter again")
async def test_a_replay_killed_mid_transaction_and_run_again_moves_nothing_twice(
        broker: Any, receiver: Receiver, tmp_path: Path, capsys: Any) -> None:
    n = 30
    letters = [_letter("crm", f"k{i}", ErrorKind.HTTP_STATUS, 503, "14:00") for i in range(n)]
    cfg, _, tier = await _setup(broker, receiver, tmp_path, letters)
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _SLOW_REPLAY, "replay", "-c", str(cfg), "--hook", "crm",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        assert proc.stdout is not None
        first = 0
        async with asyncio.timeout(60):
            while first < 4:  # two transactions committed; the third one is open
                line = await proc.stdout.readline()
                assert line, "the replay ended before it was killed"
                first += line.startswith(b"replayed: ")
        await asyncio.sleep(0.15)  # inside the 0.3 s before the third commit
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        capsys.readouterr()
        assert await _replay(cfg, "--hook", "crm") == 0
        out = capsys.readouterr().out
        again = out.count("replayed: ")
        assert 0 < again <= n - first, out
        assert f"replayed {again} dead letter(s), {n - again} replayed before" in out
        await receiver.wait_for(n, "/crm", timeout=60)
    # every letter parked once: the killed transaction's records were aborted
    moved = collections.Counter(dict(r.headers)[REPLAY_OF_HEADER] for r in
                                await _committed_records(broker.bootstrap, tier))
    assert len(moved) == n and set(moved.values()) == {1}
    delivered = collections.Counter(r.headers["webhook-id"] for r in receiver.at("/crm"))
    assert delivered == {webhook_id(f"k{i}", "crm"): 1 for i in range(n)}


@pytest.mark.skipif(BROKER == "tansu", reason="tansu closes the connection on the admin "
                    "client's OffsetFetch (list_consumer_group_offsets)")
async def test_letters_an_earlier_hookd_replayed_by_its_consumer_group_are_not_moved_again(
        broker: Any, receiver: Receiver, tmp_path: Path, capsys: Any) -> None:
    """Before the ledger, `hookd replay` kept its progress as the committed offsets of
    `<group_id>.replay` (`.replay.<hook>` with --hook): what they passed was moved then."""
    cfg, dlq, _ = await _setup(broker, receiver, tmp_path, LETTERS)
    group = yaml.safe_load(cfg.read_text())["kafka"]["group_id"]
    old = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=f"{group}.replay.crm",
                           enable_auto_commit=False)
    await old.start()
    try:
        tps = [TopicPartition(dlq, p) for p in range(DLQ_PARTS)]
        old.assign(tps)
        await old.commit(await old.end_offsets(tps))  # crm's letters: all moved
    finally:
        await old.stop()
    assert await _replay(cfg, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would replay 2 dead letter(s), 5 replayed before, skipped 1 (8 read)" in out
    assert "erp   connect      -             1" in out
