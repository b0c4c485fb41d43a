"""``hookd-sim``: the simulator's events on a topic, at the rate asked for."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from hookd.dev import simcli
from hookd.dev.sim import Simulator


def test_dry_run_prints_json_lines(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert simcli.main(["--dry-run", "--count", "25", "--seed", "3"]) == 0
    lines = capsysbinary.readouterr().out.splitlines()
    assert len(lines) == 25
    expected = Simulator(seed=3).take(25)
    for line, ev in zip(lines, expected, strict=True):
        doc = orjson.loads(line)
        assert doc == {"key": ev.key, "value": ev.value}


def test_a_negative_rate_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert simcli.main(["--rate", "-1"]) == 2
    assert "must not be negative" in capsys.readouterr().err


class FakeProducer:
    sent: list[tuple[str, bytes, bytes]] = []

    def __init__(self, **_kwargs: Any) -> None:
        FakeProducer.sent = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def flush(self) -> None:
        pass

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        self.sent.append((topic, value, key))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


def test_produces_a_bounded_count_keyed_by_call_id_with_a_stamp(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import aiokafka

    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", FakeProducer)
    assert simcli.main(["--count", "1200", "--rate", "0", "--seed", "9", "--topic", "t",
                     "--stamp", "sent_at"]) == 0
    assert len(FakeProducer.sent) == 1200
    expected = Simulator(seed=9).take(1200)
    for (topic, value, key), ev in zip(FakeProducer.sent, expected, strict=True):
        doc = orjson.loads(value)
        assert topic == "t" and key == ev.key.encode()
        assert isinstance(doc.pop("sent_at"), float)
        assert doc == ev.value
    final = orjson.loads(capsys.readouterr().out.splitlines()[-1])
    assert final["produced"] == final["acked"] == 1200 and final["done"]


class FakeClock:
    """Simulated time for the produce loop: `sleep` advances it instead of waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.naps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # still a yield point, as a real sleep is


def test_paces_to_the_rate(monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    import aiokafka

    clock = FakeClock()
    sent_at: list[float] = []

    class TimedProducer(FakeProducer):
        async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
            sent_at.append(clock())
            return await super().send(topic, value, key)

    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", TimedProducer)
    # 256/s: a tick of 1/256 s is exact in binary, so the simulated times are exact too
    args = simcli._parser().parse_args(["--rate", "256", "--duration", "0.5", "--seed", "1"])
    simulator = Simulator(args.seed, concurrency=args.concurrency)
    assert asyncio.run(simcli._produce(args, simulator, clock=clock, sleep=clock.sleep)) == 0

    assert len(FakeProducer.sent) == 128  # rate x duration, exactly
    # one event per tick, each at its slot on the schedule: never ahead, never in a burst
    assert sent_at == [i / 256 for i in range(128)]
    assert set(clock.naps) == {1 / 256}
    assert clock.now == 0.5  # stopped at the deadline
    expected = Simulator(seed=1).take(128)
    assert [orjson.loads(v) for _, v, _ in FakeProducer.sent] == [e.value for e in expected]
    final = orjson.loads(capsys.readouterr().out.splitlines()[-1])
    assert final == {"produced": 128, "acked": 128, "failed": 0, "elapsed": 0.5,
                     "rate": 256.0, "done": True}
