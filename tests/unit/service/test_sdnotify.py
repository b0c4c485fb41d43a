"""hookd.service.sdnotify: datagrams to a real AF_UNIX socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookd.service.sdnotify import Notifier


class FakeSystemd:
    """The receiving end of $NOTIFY_SOCKET."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(2.0)

    def recv(self) -> dict[str, str]:
        data = self.sock.recv(65536).decode()
        fields = dict(line.split("=", 1) for line in data.split("\n"))
        assert len(fields) == data.count("\n") + 1, f"repeated or broken lines: {data!r}"
        return fields

    def nothing_pending(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(65536)
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(2.0)
        return False


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[FakeSystemd, str]]:
    path = tmp_path / "notify"
    if len(str(path)) > 100:  # sun_path is 108 bytes
        pytest.fail(f"tmp_path too long for an AF_UNIX socket: {path}")
    fake = FakeSystemd(str(path))
    yield fake, str(path)
    fake.sock.close()


@pytest.fixture
def abstract_systemd() -> Iterator[tuple[FakeSystemd, str]]:
    name = f"hookd-test-{uuid.uuid4().hex}"
    fake = FakeSystemd("\0" + name)
    yield fake, "@" + name
    fake.sock.close()


def test_ready(systemd: tuple[FakeSystemd, str]) -> None:
    fake, path = systemd
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    notifier.ready()
    assert fake.recv() == {"READY": "1"}
    notifier.ready("generation 1, 3 hooks")
    assert fake.recv() == {"READY": "1", "STATUS": "generation 1, 3 hooks"}


def test_reloading_carries_monotonic_usec(systemd: tuple[FakeSystemd, str]) -> None:
    fake, path = systemd
    notifier = Notifier({"NOTIFY_SOCKET": path})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    fields = fake.recv()
    assert set(fields) == {"RELOADING", "MONOTONIC_USEC"}
    assert fields["RELOADING"] == "1"
    assert fields["MONOTONIC_USEC"].isdigit()
    assert before <= int(fields["MONOTONIC_USEC"]) <= after


@pytest.mark.parametrize(("call", "expected"), [
    (lambda n: n.stopping(), {"STOPPING": "1"}),
    (lambda n: n.status("delivering"), {"STATUS": "delivering"}),
    (lambda n: n.watchdog(), {"WATCHDOG": "1"}),
    (lambda n: n.send(errno=5), {"ERRNO": "5"}),
], ids=["stopping", "status", "watchdog", "send"])
def test_messages(systemd: tuple[FakeSystemd, str], call: object,
                  expected: dict[str, str]) -> None:
    fake, path = systemd
    notifier = Notifier({"NOTIFY_SOCKET": path})
    call(notifier)  # type: ignore[operator]
    assert fake.recv() == expected


def test_one_datagram_per_call(systemd: tuple[FakeSystemd, str]) -> None:
    fake, path = systemd
    notifier = Notifier({"NOTIFY_SOCKET": path})
    notifier.status("a")
    notifier.watchdog()
    assert fake.recv() == {"STATUS": "a"}
    assert fake.recv() == {"WATCHDOG": "1"}
    assert fake.nothing_pending()


def test_abstract_socket_name(abstract_systemd: tuple[FakeSystemd, str]) -> None:
    fake, name = abstract_systemd
    notifier = Notifier({"NOTIFY_SOCKET": name})
    assert notifier.enabled
    notifier.ready("up")
    assert fake.recv() == {"READY": "1", "STATUS": "up"}
    notifier.stopping()
    assert fake.recv() == {"STOPPING": "1"}


def test_reads_os_environ_by_default(systemd: tuple[FakeSystemd, str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake, path = systemd
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    Notifier().ready()
    assert fake.recv() == {"READY": "1"}


@pytest.mark.parametrize("environ", [{}, {"NOTIFY_SOCKET": ""}], ids=["unset", "empty"])
def test_no_notify_socket_is_a_no_op(environ: dict[str, str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def no_socket(*args: object, **kwargs: object) -> None:
        raise AssertionError("a socket was opened without NOTIFY_SOCKET")

    monkeypatch.setattr(socket, "socket", no_socket)
    notifier = Notifier(environ)
    assert not notifier.enabled
    notifier.ready("x")
    notifier.reloading()
    notifier.stopping()
    notifier.status("x")
    notifier.watchdog()


def test_a_missing_socket_is_not_an_error(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    notifier.ready()
    notifier.watchdog()


@pytest.mark.parametrize(("environ", "interval"), [
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "1000000"}, 0.5),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
    ({"WATCHDOG_USEC": ""}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({"WATCHDOG_USEC": "-5"}, None),
    ({"WATCHDOG_USEC": "0"}, None),  # sd_watchdog_enabled() rejects 0; a 0 s loop would spin
    ({}, None),
], ids=["30s", "1s", "our-pid", "other-pid", "pid-1", "empty", "garbage", "negative", "zero",
        "unset"])
def test_watchdog_interval(environ: dict[str, str], interval: float | None) -> None:
    assert Notifier(environ).watchdog_interval == interval
