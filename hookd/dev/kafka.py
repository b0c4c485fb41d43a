"""Apache Kafka on loopback, for tests and benchmarks: one or more KRaft nodes from the jars.

``KafkaCluster(nodes=1)`` runs combined broker+controller nodes (``process.roles=broker,
controller``; no ZooKeeper) on free ``127.0.0.1`` ports, each a ``java kafka.Kafka`` process
in its own process group that Linux stops should the caller die. The quorum is static
(``controller.quorum.voters``), so storage is formatted without ``--standalone``, once, on
the first ``start()``; the logs stay on disk, so a node that is killed or stopped comes back
with its data (unlike tansu). ``start()`` blocks until every node has logged
``Kafka Server started`` and answers a Metadata request naming every broker.

Extra listeners (SASL_SSL, SSL) and broker settings are passed in; SCRAM users are added at
format time. Settings that keep a one-core test fast are the defaults (see ``_BASE``).

    python -m hookd.dev.kafka [--nodes N] [--topic NAME[:PARTITIONS]]...   # until Ctrl-C
    python -m hookd.dev.kafka --check   # Java 17+ here? the pinned jars fetched and checked
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from hookd.dev.admin import create_topic
from hookd.dev.child import LoggedChild
from hookd.dev.java import java_binary, java_problem
from hookd.dev.kafkajars import KAFKA_VERSION, KafkaJarsError, ensure_jars
from hookd.dev.probe import metadata_probe
from hookd.dev.process import (
    HOST,
    BrokerStartError,
    free_port,
    serve_until_signal,
    topic_specs,
)

__all__ = ["BENCH_JVM", "KAFKA_VERSION", "KafkaCluster", "KafkaNode", "java_binary"]

#: Broker settings for a throw-away cluster on one machine: no wait before the first
#: rebalance, one offsets partition, a 2 MiB log cleaner buffer (else 128 MiB of heap at
#: start), session timeouts down to 500 ms allowed (production floor: 6 s).
_BASE: Final[Mapping[str, str]] = {
    "process.roles": "broker,controller",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "500",
    "offsets.topic.num.partitions": "1",
    "log.cleaner.dedupe.buffer.size": "2097152",
    "auto.create.topics.enable": "false",
    "num.network.threads": "2",
    "num.io.threads": "2",
    "num.recovery.threads.per.data.dir": "1",
    "log.segment.bytes": str(16 * 1024 * 1024),
    "log.flush.interval.messages": str(2**62),
    "controller.quorum.election.backoff.max.ms": "200",
    # a killed broker is fenced (its partitions led elsewhere) after 3 s, not 9 s, and may
    # register again only then: faults in tests take seconds, not tens of seconds
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
}
_READY_LINE: Final = b"Kafka Server started"
_JVM: Final = ("-Xmx256m", "-Xms64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               "-Xss512k", "-Djava.awt.headless=true")
#: For benchmarks: the JIT at full strength and a heap that does not make the broker the
#: bottleneck (tests start faster with _JVM's C1-only JIT).
BENCH_JVM: Final = ("-Xmx1g", "-Xms256m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                    "-Djava.awt.headless=true")
_LOG4J: Final = """status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class KafkaNode:
    """One combined broker+controller process of a :class:`KafkaCluster`."""

    def __init__(self, cluster: KafkaCluster, node_id: int, workdir: Path,
                 listeners: Mapping[str, str], port: int | None = None) -> None:
        self.cluster, self.node_id, self.workdir = cluster, node_id, workdir
        self.protocols = dict(listeners)  # listener name -> security protocol
        self.ports = {name: free_port() for name in [*listeners, "CONTROLLER"]}
        if port:
            self.ports["PLAINTEXT"] = port
        self.child = LoggedChild(workdir / "kafka.log")

    @property
    def port(self) -> int:
        return self.ports["PLAINTEXT"]

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def address(self, listener: str) -> str:
        return f"{HOST}:{self.ports[listener]}"

    @property
    def pid(self) -> int | None:
        return self.child.pid

    @property
    def running(self) -> bool:
        return self.child.running

    @property
    def log_path(self) -> Path:
        return self.child.log_path

    @property
    def properties_path(self) -> Path:
        return self.workdir / "server.properties"

    def log_tail(self, lines: int = 40) -> str:
        return self.child.log_tail(lines)

    def write_properties(self, voters: str, extra: Mapping[str, str]) -> None:
        names = [*self.protocols, "CONTROLLER"]
        props = {
            **_BASE,
            "node.id": str(self.node_id),
            "controller.quorum.voters": voters,
            "listeners": ",".join(f"{n}://{HOST}:{self.ports[n]}" for n in names),
            "advertised.listeners": ",".join(
                f"{n}://{HOST}:{self.ports[n]}" for n in self.protocols),
            "listener.security.protocol.map": ",".join(
                [f"{n}:{p}" for n, p in self.protocols.items()] + ["CONTROLLER:PLAINTEXT"]),
            "log.dirs": str(self.workdir / "data"),
            **extra,
        }
        self.properties_path.write_text(
            "".join(f"{k}={_escape(v)}\n" for k, v in props.items()))

    def spawn(self) -> None:
        """Start the process (no wait: :meth:`KafkaCluster.start` waits for all nodes)."""
        self.child.spawn([*self.cluster.java_command(), "kafka.Kafka",
                          str(self.properties_path)], f"starting kafka node {self.node_id}")

    def started(self) -> bool:
        """Has this run of the process logged its ready line? (raises if it died)"""
        if not self.child.running:
            raise BrokerStartError(
                f"kafka node {self.node_id} exited with code {self.child.exit_code} during "
                f"startup.\n--- {self.log_path} (tail) ---\n{self.log_tail()}")
        return _READY_LINE in self.child.output()

    def signal(self, signum: int) -> None:
        self.child.signal(signum)

    def kill(self) -> None:
        """SIGKILL: a crash. Its data stays on disk; :meth:`spawn` brings it back."""
        self.child.kill()

    def terminate(self, timeout: float = 30.0) -> bool:
        """SIGTERM (a controlled shutdown: leadership moved first), SIGKILL after timeout.
        True if it had to be SIGKILLed (it had not exited within ``timeout``)."""
        return self.child.terminate(timeout)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<KafkaNode {self.node_id} {self.bootstrap} pid={self.pid} {state}>"


def _escape(value: str) -> str:
    """A Java properties value: backslashes doubled, line breaks as \\n."""
    return value.replace("\\", "\\\\").replace("\n", "\\n")


class KafkaCluster:
    """``nodes`` Apache Kafka KRaft nodes on ``127.0.0.1`` (never for production).

    ``listeners`` maps extra listener names to security protocols (``{"SASL_SSL":
    "SASL_SSL"}``); ``PLAINTEXT`` is always there, for :attr:`bootstrap`. ``settings`` are
    added to every node's ``server.properties``; ``format_args`` to ``kafka-storage
    format`` (``["--add-scram", "SCRAM-SHA-512=[name=u,password=p]"]``). Replication
    defaults to ``min(3, nodes)``. ``ports`` fixes the PLAINTEXT ports (a client that
    already knows them); otherwise free ones are picked once, kept across restarts.
    """

    def __init__(self, workdir: Path | None = None, *, nodes: int = 1,
                 listeners: Mapping[str, str] | None = None,
                 settings: Mapping[str, str] | None = None,
                 format_args: Sequence[str] = (), startup_timeout: float = 90.0,
                 jvm_options: Sequence[str] = _JVM, ports: Sequence[int] = ()) -> None:
        self._owns_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="hookd-kafka-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cluster_id = uuid.uuid4().bytes.hex()[:22]  # replaced by a proper id at format
        self._format_args = list(format_args)
        self._startup_timeout = startup_timeout
        self._jvm = list(jvm_options)
        self._libs: Path | None = None
        self._formatted = False
        replicas = str(min(3, nodes))
        self.settings = {
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": str(min(2, nodes)),
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": str(min(2, nodes)),
            "default.replication.factor": replicas,
            **(settings or {}),
        }
        protocols = {"PLAINTEXT": "PLAINTEXT", **(listeners or {})}
        given = [*ports, *[0] * nodes]
        self.nodes = [KafkaNode(self, i, self.workdir / f"node{i}", protocols, given[i - 1])
                      for i in range(1, nodes + 1)]

    # -- addresses -------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """The PLAINTEXT listeners of every node, for ``bootstrap_servers``."""
        return self.address("PLAINTEXT")

    def address(self, listener: str) -> str:
        return ",".join(node.address(listener) for node in self.nodes)

    @property
    def running(self) -> bool:
        return all(node.running for node in self.nodes)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(f"--- node {n.node_id} ---\n{n.log_tail(lines)}" for n in self.nodes)

    # -- lifecycle -------------------------------------------------------------------

    def java_command(self) -> list[str]:
        assert self._libs is not None
        log4j = self.workdir / "log4j2.properties"
        return [java_binary(), *self._jvm, f"-Dlog4j2.configurationFile={log4j}",
                "-cp", f"{self._libs}/*"]

    def start(self) -> KafkaCluster:
        """Format (first time), start every stopped node, wait until all serve."""
        if not self._formatted:
            self._format()
        for node in self.nodes:
            node.spawn()
        self.wait_ready(self.nodes)
        return self

    def start_node(self, node: KafkaNode) -> None:
        node.spawn()
        self.wait_ready([node])

    def wait_ready(self, nodes: Sequence[KafkaNode]) -> None:
        deadline = time.monotonic() + self._startup_timeout
        waiting = list(nodes)
        while waiting:
            waiting = [node for node in waiting if not node.started()]
            if waiting and time.monotonic() > deadline:
                raise BrokerStartError(
                    f"kafka nodes {[n.node_id for n in waiting]} not started within "
                    f"{self._startup_timeout:.0f}s.\n{self.log_tail()}")
            time.sleep(0.05)
        self._wait_metadata(nodes, deadline)

    def _wait_metadata(self, nodes: Sequence[KafkaNode], deadline: float) -> None:
        """Until each node's Metadata answer names every running broker."""
        want = sorted((n.node_id, HOST, n.port) for n in self.nodes if n.running)
        for node in nodes:
            last: object = None
            while True:
                try:
                    _cluster, brokers = metadata_probe(node.port, timeout=1.0)
                    if sorted(brokers) == want:
                        break
                    last = brokers
                except (OSError, ValueError, struct.error) as exc:
                    last = exc
                if time.monotonic() > deadline:
                    raise BrokerStartError(
                        f"kafka node {node.node_id} does not list every broker: {last!r}")
                time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every node: SIGTERM to all at once (a node waiting for the last of a quorum
        to shut down would wait in vain), SIGKILL what is left after ``timeout``; remove
        the workdir if this cluster made it."""
        self.terminate(timeout)
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def terminate(self, timeout: float = 10.0) -> list[KafkaNode]:
        """SIGTERM every node at once, SIGKILL those still running after ``timeout``; returns
        the nodes that had to be SIGKILLed."""
        for node in self.nodes:
            node.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        return [node for node in self.nodes
                if node.terminate(max(0.0, deadline - time.monotonic()))]

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()

    def leader_of(self, topic: str, partition: int = 0) -> KafkaNode:
        """The node leading ``topic``'s ``partition`` now (by a Metadata request)."""
        from aiokafka.admin import AIOKafkaAdminClient

        async def ask() -> int:
            admin = AIOKafkaAdminClient(bootstrap_servers=self._live_bootstrap())
            await admin.start()
            try:
                described: list[dict[str, Any]] = await admin.describe_topics([topic])
            finally:
                await admin.close()
            for part in described[0]["partitions"]:
                if part["partition"] == partition:
                    return int(part["leader"])
            raise LookupError(f"{topic}[{partition}] not found")

        leader = asyncio.run(ask())
        return next(n for n in self.nodes if n.node_id == leader)

    def wait_in_sync(self, timeout: float = 60.0) -> float:
        """Until every replica of every topic is in sync (no partition under-replicated, as
        an operator checks before restarting the next broker of a rolling restart); returns
        the seconds waited. TimeoutError names the partitions still behind."""
        from aiokafka.admin import AIOKafkaAdminClient

        async def behind() -> list[str]:
            admin = AIOKafkaAdminClient(bootstrap_servers=self._live_bootstrap(),
                                        request_timeout_ms=5000)
            await admin.start()
            try:
                names = await admin.list_topics()
                described: list[dict[str, Any]] = await admin.describe_topics(names)
            finally:
                await admin.close()
            return [f"{t['topic']}-{p['partition']} isr={sorted(p['isr'])}"
                    for t in described for p in t["partitions"]
                    if set(p["isr"]) != set(p["replicas"])]

        started = time.monotonic()
        last: object = None
        while time.monotonic() - started < timeout:
            try:
                last = asyncio.run(behind())
                if not last:
                    return time.monotonic() - started
            except Exception as exc:  # a node still starting: ask again
                last = exc
            time.sleep(0.2)
        raise TimeoutError(f"replicas not in sync within {timeout:.0f}s: {last!r}")

    def _live_bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes if n.running) or self.bootstrap

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<KafkaCluster {KAFKA_VERSION} {self.nodes}>"

    # -- internals -------------------------------------------------------------------

    def _format(self) -> None:
        self._libs = ensure_jars()
        (self.workdir / "log4j2.properties").write_text(_LOG4J)
        self.cluster_id = self._run_tool(["random-uuid"]).strip().splitlines()[-1]
        voters = ",".join(f"{n.node_id}@{HOST}:{n.ports['CONTROLLER']}" for n in self.nodes)
        for node in self.nodes:
            node.workdir.mkdir(parents=True, exist_ok=True)
            node.write_properties(voters, self.settings)
            self._run_tool(["format", "-t", self.cluster_id, "-c", str(node.properties_path),
                            *self._format_args])
        self._formatted = True

    def _run_tool(self, args: list[str]) -> str:
        done = subprocess.run([*self.java_command(), "kafka.tools.StorageTool", *args],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=120)
        if done.returncode != 0:
            raise BrokerStartError(f"kafka-storage {args[0]} failed ({done.returncode}): "
                                   f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
        return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hookd.dev.kafka",
                                     description="Run Apache Kafka on loopback until Ctrl-C.")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--topic", action="append", default=[], metavar="NAME[:PARTITIONS]")
    parser.add_argument("--check", action="store_true",
                        help="only check Java and fetch the pinned jars (what make test does)")
    args = parser.parse_args(argv)
    if args.check:
        if problem := java_problem():
            print(f"error: {problem}", file=sys.stderr)
            return 1
        try:
            libs = ensure_jars()
        except KafkaJarsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"Apache Kafka {KAFKA_VERSION}: Java ok, {len(list(libs.glob('*.jar')))} pinned "
              f"jars in {libs}")
        return 0
    with KafkaCluster(nodes=args.nodes) as cluster:
        for name, partitions in topic_specs(args.topic):
            asyncio.run(create_topic(cluster.bootstrap, name, partitions,
                                     replication=min(3, args.nodes)))
        print(f"Apache Kafka {KAFKA_VERSION} on {cluster.bootstrap}; Ctrl-C stops it",
              flush=True)
        serve_until_signal(lambda: cluster.running)
    return 0


if __name__ == "__main__":
    sys.exit(main())
