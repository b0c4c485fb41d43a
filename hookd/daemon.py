"""The daemon: startup() / run() / shutdown(); signals only set events."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from hookd.deadletter import KafkaDeadLetters
from hookd.delivery import HttpSender
from hookd.dispatch import Dispatcher
from hookd.errors import ConfigError
from hookd.health import HealthServer
from hookd.kafka import make_consumer, make_producer
from hookd.loader import Runtime, load_config
from hookd.logs import REDACTOR, configure_logging
from hookd.offsets import OffsetTracker
from hookd.redact import Redactor
from hookd.sdnotify import Notifier

log = structlog.get_logger("hookd.daemon")
EX_CONFIG = 78  # sysexits.h: configuration error (hookd.service does not restart on it)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.daemon.partitions_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions assigned", partitions=sorted(f"{t.topic}-{t.partition}"
                                                          for t in assigned))


class Daemon:
    def __init__(self, config_path: str, environ: Mapping[str, str] | None = None,
                 notifier: Notifier | None = None) -> None:
        self.config_path = config_path
        self.environ = dict(os.environ if environ is None else environ)
        self.notifier = notifier or Notifier(self.environ)
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._runtime: Runtime | None = None
        self.last_reload: dict[str, Any] = {"ok": None, "at": None, "error": None}
        self.tracker = OffsetTracker()
        self.consumer: Any = None
        self.producer: Any = None
        self.sender: HttpSender | None = None
        self.dispatcher: Dispatcher | None = None
        self.health: HealthServer | None = None
        self._fetched: dict[TopicPartition, int] = {}
        self._paused = False
        self._tick = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []

    # -- signals: set an event, nothing else ---------------------------------------------
    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    @property
    def runtime(self) -> Runtime:
        assert self._runtime is not None, "startup() first"
        return self._runtime

    # -- phase 1 ---------------------------------------------------------------------------
    async def startup(self) -> None:
        """Load config (ConfigError if invalid), then health, HTTP and Kafka clients."""
        self._runtime = load_config(self.config_path, self.environ)
        cfg = self.runtime.config
        configure_logging(cfg.logging.level, cfg.logging.format)
        REDACTOR.current = Redactor(self.runtime.secrets)
        self.last_reload = {"ok": True, "at": self.runtime.loaded_at, "error": None}
        self.health = HealthServer(cfg.health.listen, self.state)
        await self.health.start()
        self.sender = HttpSender(cfg.delivery)
        await self.sender.start()
        await self._connect_kafka()
        if self._stop.is_set():
            return
        self.dispatcher = Dispatcher(self.sender, KafkaDeadLetters(self.producer,
                                     cfg.kafka.dead_letter_topic), self.tracker,
                                     lambda: self.runtime, REDACTOR)
        self.consumer.subscribe(list(cfg.kafka.topics), listener=_Rebalance(self))
        log.info("started", config=self.config_path, hooks=len(self.runtime.hooks),
                 topics=list(cfg.kafka.topics), group=cfg.kafka.group_id,
                 health=f"{cfg.health.listen.rpartition(':')[0]}:{self.health.port}")
        self.notifier.ready(self._status())

    async def _connect_kafka(self) -> None:
        """Wait for the broker (no crash loop while it is down); /readyz says 503 meanwhile."""
        delay = 0.5
        while not self._stop.is_set():
            consumer = make_consumer(self.runtime.config.kafka)
            producer = make_producer(self.runtime.config.kafka)
            try:
                await producer.start()
                await consumer.start()
            except KafkaError as exc:
                log.warning("kafka not reachable, retrying", error=str(exc), retry_in=delay)
                for client in (consumer, producer):
                    with contextlib.suppress(Exception):
                        await client.stop()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                delay = min(delay * 2, 30.0)
                continue
            self.consumer, self.producer = consumer, producer
            return

    # -- phase 2 ---------------------------------------------------------------------------
    async def run(self) -> None:
        if self._stop.is_set():
            return
        self._tasks = [asyncio.create_task(self._reload_loop()),
                       asyncio.create_task(self._watchdog_loop())]
        tune = self.runtime.config.kafka.consumer
        last_commit = time.monotonic()
        while not self._stop.is_set():
            self._tick = time.monotonic()
            self._backpressure()
            try:
                batches = await self.consumer.getmany(timeout_ms=200,
                                                      max_records=tune.max_poll_records)
            except KafkaError as exc:
                log.warning("fetch failed", error=str(exc))
                await asyncio.sleep(0.5)
                continue
            assert self.dispatcher is not None
            for tp, records in batches.items():
                for record in records:
                    self.dispatcher.submit(record)
                self._fetched[tp] = records[-1].offset + 1
            if time.monotonic() - last_commit >= tune.commit_interval:
                await self.commit()
                last_commit = time.monotonic()

    def _backpressure(self) -> None:
        """Pause every partition while too many events are in flight; memory stays bounded."""
        if self.dispatcher is None:
            return
        high = 2 * self.runtime.config.delivery.max_in_flight
        assigned = list(self.consumer.assignment())
        if not self._paused and self.dispatcher.pending >= high:
            self.consumer.pause(*assigned)
            self._paused = True
        elif self._paused and self.dispatcher.pending <= high // 2:
            self.consumer.resume(*assigned)
            self._paused = False
        elif self._paused:
            self.consumer.pause(*assigned)  # partitions assigned since the pause

    async def commit(self, only: set[TopicPartition] | None = None) -> None:
        offsets = self.tracker.committable()
        assigned = self.consumer.assignment()
        offsets = {tp: o for tp, o in offsets.items()
                   if tp in assigned and (only is None or tp in only)}
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            log.warning("commit failed; the events will be redelivered", error=str(exc))
            return
        self.tracker.mark_committed(offsets)

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        grace = self.runtime.config.kafka.consumer.revoke_grace
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(self.tracker.in_flight(tp) for tp in revoked):
            await asyncio.sleep(0.05)
        await self.commit(only=revoked)
        self.tracker.forget(revoked)
        for tp in revoked:
            self._fetched.pop(tp, None)
        log.info("partitions revoked", partitions=sorted(f"{t.topic}-{t.partition}"
                                                         for t in revoked))

    async def _reload_loop(self) -> None:
        """SIGHUP: build the new config aside, swap one reference; a burst is one reload."""
        while True:
            await self._reload.wait()
            self._reload.clear()
            self.notifier.reloading()
            old = self.runtime
            try:
                new = await asyncio.to_thread(load_config, self.config_path, self.environ,
                                              old.generation + 1)
            except ConfigError as exc:
                self.last_reload = {"ok": False, "at": datetime.now(UTC),
                                    "error": [str(i) for i in exc.issues]}
                log.error("reload rejected; the previous config stays in force",
                          generation=old.generation, errors=[str(i) for i in exc.issues])
            else:
                if new.config.kafka != old.config.kafka or new.config.health != old.config.health:
                    log.warning("kafka and health settings change only on restart")
                self._runtime = new
                REDACTOR.current = Redactor(new.secrets)
                if self.dispatcher is not None:
                    self.dispatcher.reset_disabled()
                self.last_reload = {"ok": True, "at": new.loaded_at, "error": None}
                log.info("reloaded", generation=new.generation, hooks=len(new.hooks))
            self.notifier.ready(self._status())

    async def _watchdog_loop(self) -> None:
        interval = self.notifier.watchdog_interval
        if interval is None:
            return
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self._tick < 4 * interval + 1:  # the main loop is turning
                self.notifier.watchdog()
                self.notifier.status(self._status())

    # -- phase 3 ---------------------------------------------------------------------------
    async def shutdown(self) -> None:
        """Stop fetching, finish in-flight work within shutdown_timeout, commit, close."""
        self.notifier.stopping()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        timeout = self.runtime.config.shutdown_timeout if self._runtime else 0.0
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                self.consumer.pause(*self.consumer.assignment())
        if self.dispatcher is not None:
            abandoned = await self.dispatcher.drain(timeout)
            if abandoned:
                log.warning("shutdown timeout: events left uncommitted, they will be redelivered",
                            events=abandoned)
        if self.consumer is not None:
            await self.commit()
            with contextlib.suppress(Exception):
                await self.consumer.stop()
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.stop()
        if self.sender is not None:
            await self.sender.close()
        if self.health is not None:
            await self.health.stop()
        log.info("stopped")

    # -- health ----------------------------------------------------------------------------
    def _status(self) -> str:
        if self._runtime is None:
            return "starting"
        c = self.dispatcher.counters if self.dispatcher else None
        return (f"generation {self.runtime.generation}, {len(self.runtime.hooks)} hooks"
                + (f", delivered {c.delivered}, dead-lettered {c.dead_lettered}" if c else ""))

    def state(self) -> tuple[bool, dict[str, Any]]:
        rt = self._runtime
        assigned = sorted(self.consumer.assignment(), key=lambda t: (t.topic, t.partition)) \
            if self.consumer is not None else []
        lag: dict[str, int] = {}
        for tp in assigned:
            high = self.consumer.highwater(tp)
            if high is not None and tp in self._fetched:
                lag[f"{tp.topic}-{tp.partition}"] = max(0, high - self._fetched[tp])
        counters = self.dispatcher.counters if self.dispatcher else None
        body: dict[str, Any] = {
            "config": {"generation": rt.generation if rt else None,
                       "loaded_at": rt.loaded_at if rt else None,
                       "hooks": len(rt.hooks) if rt else 0},
            "last_reload": self.last_reload,
            "assigned_partitions": [f"{t.topic}-{t.partition}" for t in assigned],
            "lag": {"total": sum(lag.values()), "partitions": lag},
            "counters": {
                "delivered": counters.delivered if counters else 0,
                "failed": counters.failed if counters else 0,
                "retrying": counters.retrying if counters else 0,
                "dead_lettered": counters.dead_lettered if counters else 0,
                "in_flight": self.sender.limits.in_flight if self.sender else 0,
                "events_pending": self.dispatcher.pending if self.dispatcher else 0,
            },
            "open_circuits": [],
            "disabled_hooks": dict(self.dispatcher.disabled) if self.dispatcher else {},
        }
        ready = rt is not None and bool(assigned) and not self._stop.is_set()
        return ready, REDACTOR().value(body)

    # -- the whole life --------------------------------------------------------------------
    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        for sig, handler in ((signal.SIGHUP, self.request_reload),
                             (signal.SIGTERM, self.request_stop),
                             (signal.SIGINT, self.request_stop)):
            loop.add_signal_handler(sig, handler)
        try:
            await self.startup()
        except ConfigError as exc:
            for issue in exc.issues:
                print(issue, file=sys.stderr)
            await self.shutdown()
            return EX_CONFIG
        try:
            await self.run()
        finally:
            await self.shutdown()
        return 0


def run_daemon(config_path: str) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(Daemon(config_path).main())
    return uvloop.run(Daemon(config_path).main())
