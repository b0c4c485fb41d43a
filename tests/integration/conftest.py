"""Fixtures for integration tests against a real broker: Apache Kafka (KRaft, from its
jars; see hookd/dev/kafka.py) by default, tansu with ``HOOKD_TEST_BROKER=tansu``.

* ``broker``: one ``Broker`` for the whole session (a sync fixture, so it is not
  bound to any asyncio loop).  If the broker binary is missing or the broker does not
  come up, the fixture errors loudly; nothing is skipped.
* ``topic``: a unique, freshly created 4-partition topic per test.

Every test collected under ``tests/integration`` gets the ``integration`` marker, so
``pytest -m "not integration"`` runs the unit tests only.

Tests that ``restart()``/``kill()`` the shared broker must leave it running; tansu comes
back empty (memory storage), Apache Kafka with its data. Prefer a private ``Broker`` for
such tests (see ``test_broker_faults.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.integration.broker import BROKER, Broker, create_topic
from tests.integration.receiver import Receiver

_HERE = Path(__file__).resolve().parent

TOPIC_PARTITIONS = 4

#: Files that start Apache Kafka clusters of their own (SASL/TLS listeners, three nodes):
#: not collected on BROKER=tansu, which is for machines without Java.
collect_ignore = ["test_kafka_security.py"] if BROKER == "tansu" else []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the broker log tail to the report of a failed test that used the broker."""
    report = yield
    funcargs = getattr(item, "funcargs", {})
    instance = funcargs.get("broker")
    if report.failed and isinstance(instance, Broker):
        report.sections.append((f"{BROKER} log (tail)", instance.log_tail(30)))
    return report


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A running broker shared by the session; its log is kept under pytest's basetemp
    (``.../kafka0/node1/kafka.log`` or ``.../tansu0/tansu.log``) for post-mortems."""
    instance = Broker(tmp_path_factory.mktemp(BROKER))
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def bootstrap(broker: Any) -> str:
    """``bootstrap_servers`` of the session broker, restarting it if a test killed it."""
    if not broker.running:
        broker.start()
    return broker.bootstrap


@pytest_asyncio.fixture
async def topic(bootstrap: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A unique topic with ``TOPIC_PARTITIONS`` partitions, created before the test."""
    base = request.node.name.split("[")[0].replace("_", "-")[:40]
    name = f"{base}-{uuid.uuid4().hex[:8]}"
    await create_topic(bootstrap, name, TOPIC_PARTITIONS)
    yield name


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP receiver on 127.0.0.1 (see receiver.py), stopped after the test."""
    rcv = await Receiver().start()
    yield rcv
    await rcv.stop()


def pytest_report_header(config: pytest.Config) -> str:
    from tests.integration.broker import KAFKA_VERSION

    which = f"Apache Kafka {KAFKA_VERSION} (KRaft)" if BROKER == "kafka" else "tansu"
    return f"integration broker: {which} (HOOKD_TEST_BROKER={BROKER})"
