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

from hookd.config import HostPort
from hookd.delivery.sender import HttpSender
from hookd.errors import EX_CONFIG, ConfigError
from hookd.kafka import topics
from hookd.kafka.batching import BatchedProducer
from hookd.kafka.connect import connect
from hookd.kafka.consumer import ConsumerLoop, RecordAges
from hookd.kafka.deadletter import KafkaDeadLetters
from hookd.kafka.outcomelog import OutcomeLog
from hookd.kafka.parking import ParkingLot, due_of
from hookd.kafka.stalls import Problem, StallWatch
from hookd.kafka.writes import WriteWatch
from hookd.pipeline.dispatch import Dispatcher
from hookd.pipeline.runtime import Runtime, load_config, tiers_of
from hookd.requests.oauth import TokenCache
from hookd.service.health import HealthServer, document, is_ready, status_line
from hookd.service.metrics import exposition, registry_of
from hookd.service.sdnotify import Notifier
from hookd.service.stopping import arm_last_resort, bounded, drain, run_until_stopped, stop_clients
from hookd.telemetry.hookstats import HookStats
from hookd.telemetry.logs import REDACTOR, configure_logging
from hookd.telemetry.redact import Redactor

log = structlog.get_logger("hookd.daemon")

def _due(record: Any) -> float | None:
    """A retry-topic record is held back until its due time (unreadable ones pass on)."""
    due = due_of(record)
    return due if due is not None and due > time.time() else None


class Daemon:
    def __init__(self, config_path: str, environ: Mapping[str, str] | None = None,
                 notifier: Notifier | None = None,
                 health_listen: HostPort | None = None) -> None:
        self.config_path = config_path
        self.health_listen = health_listen  # `run --health-listen`: over health.listen
        self.environ = dict(os.environ if environ is None else environ)
        self.notifier = notifier or Notifier(self.environ)
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._runtime: Runtime | None = None
        self.last_reload: dict[str, Any] = {"ok": None, "at": None, "error": None}
        self.reloads = {"ok": 0, "rejected": 0}  # hookd_config_reload_total
        # "source consumer", "retry consumer", "producer", "admin": started in this order,
        # stopped at shutdown
        self.clients: dict[str, Any] = {}
        self.batches: BatchedProducer | None = None  # parked, dead-lettered, outcome records
        self.sender: HttpSender | None = None
        self.dispatcher: Dispatcher | None = None
        self.parking: ParkingLot | None = None
        self.health: HealthServer | None = None
        self.source: ConsumerLoop | None = None
        self.ages = RecordAges()  # of the source topics' records (a retry record's is moot)
        self.retries: ConsumerLoop | None = None
        self.writes: WriteWatch | None = None  # parked and dead-letter writes failing
        self._tasks: list[asyncio.Task[None]] = []
        self.failed = False  # a loop died: main() returns 1

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
        cfg = self._started_with = self.runtime.config
        configure_logging(cfg.logging.level, cfg.logging.format)
        REDACTOR.current = Redactor(self.runtime.secrets)
        self.last_reload = {"ok": True, "at": self.runtime.loaded_at, "error": None}
        listen = self.health_listen or cfg.health.listen
        registry = registry_of(self) if cfg.health.metrics.enabled else None
        self.health = HealthServer(listen, self.state, None if registry is None
                                   else lambda: exposition(registry))
        await self.health.start()
        self.sender = HttpSender(cfg.delivery)
        await self.sender.start()
        if not await self._connect_kafka():
            return
        kafka = cfg.kafka
        await topics.prepare(self.clients["admin"], kafka)  # before anything subscribes
        stall_after = cfg.health.stall_after
        self.writes = WriteWatch(StallWatch("producer", stall_after, noun="producer",
                                            changed=self._stalls_changed))
        self.batches = BatchedProducer(self.clients["producer"])
        self.parking = ParkingLot(self.batches, self.clients["admin"], kafka.retry_topic_prefix,
                                  kafka.retry_partitions, kafka.retry_replication,
                                  kafka.max_request_size, writes=self.writes)
        await self.parking.ensure_tiers(tiers_of(self.runtime))
        self.dispatcher = Dispatcher(
            self.sender, KafkaDeadLetters(self.batches, kafka.dead_letter_topic,
                                          kafka.max_request_size),
            lambda: self.runtime, REDACTOR, self.parking, TokenCache(self.sender.post_form),
            stats=HookStats(h.id for h in self.runtime.hooks), timed=registry is not None,
            writes=self.writes, outcomes=None if kafka.outcomes_topic is None
            else OutcomeLog(self.batches, kafka.outcomes_topic, self.writes))
        self.sender.endpoints.crowded = self._crowded
        self.source = ConsumerLoop("source", self.clients["source consumer"],
                                   self.dispatcher.submit,
                                   kafka.consumer, self._pending, self._high_water,
                                   ages=self.ages,
                                   watch=StallWatch("source", stall_after,
                                                    changed=self._stalls_changed),
                                   abandon=self.dispatcher.abandon)
        self.retries = ConsumerLoop("retry", self.clients["retry consumer"],
                                    self.dispatcher.submit_parked,
                                    kafka.consumer, self._pending, self._high_water, due=_due,
                                    watch=StallWatch("retry", stall_after,
                                                     changed=self._stalls_changed),
                                    abandon=self.dispatcher.abandon)
        self.source.consumer.subscribe(list(kafka.topics), listener=self.source.listener())
        self.retries.consumer.subscribe(self.parking.topics, listener=self.retries.listener())
        log.info("started", config=self.config_path, hooks=len(self.runtime.hooks),
                 topics=list(kafka.topics), group=kafka.group_id,
                 group_instance_id=kafka.group_instance_id,
                 retry_tiers=list(self.parking.tiers),
                 health=_address(self.health.host, self.health.port))
        self.notifier.ready(self._status())

    def _stalls_changed(self) -> None:
        """A stall began or ended: systemd's STATUS says so at once, not at the next
        watchdog ping (if there is a watchdog at all)."""
        self.notifier.status(self._status())

    def _pending(self) -> int:
        return self.dispatcher.pending if self.dispatcher else 0

    def _crowded(self) -> bool:
        """Half the record budget in flight: an Endpoint then turns a silent endpoint's
        deep queue away early, before a black hole's queue eats the rest of the budget."""
        return 2 * self._pending() >= self._high_water()

    def _high_water(self) -> int:
        """Records in flight (both loops) at which consumption pauses: bounded memory.

        Four times max_in_flight: when an endpoint turns into a black hole, its deliveries
        queue until it is found stalled, and each holds its record; at 2x the queue
        filled the budget first and paused the healthy hooks too (black-holed neighbour
        in `make bench`: 0.56-0.64x at 2x, 0.72-0.74x at 4x; peak RSS 125 MB). Half of it
        in flight makes an Endpoint turn a silent endpoint's deep queue away early.
        Like max_in_flight itself, it changes on restart only (hence the start-up config)."""
        return 4 * self._started_with.delivery.max_in_flight

    async def _connect_kafka(self) -> bool:
        """Wait for the broker (no crash loop while it is down); /readyz says 503 meanwhile."""
        clients = await connect(self.runtime.config.kafka, self._stop)
        if clients is None:
            return False
        self.clients = clients
        return True

    # -- phase 2 ---------------------------------------------------------------------------
    async def run(self) -> None:
        if self._stop.is_set() or self.source is None or self.retries is None:
            return
        self._tasks = [asyncio.create_task(self._reload_loop(), name="reload loop"),
                       asyncio.create_task(self._watchdog_loop(), name="watchdog loop"),
                       asyncio.create_task(self.retries.run(self._stop), name="retry loop")]
        for task in self._tasks:
            task.add_done_callback(self._task_ended)
        await self.source.run(self._stop)

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        """A helper loop that dies is a daemon that no longer does its job: stop (exit 1,
        so systemd restarts it) rather than go on with, say, parked deliveries unread."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        log.error("a daemon loop failed; stopping", task=task.get_name(),
                  error=f"{type(exc).__name__}: {exc}", exc_info=exc)
        self.failed = True
        self.request_stop()

    async def _reload_loop(self) -> None:
        """SIGHUP: build the new config aside, swap one reference; a burst is one reload."""
        while True:
            await self._reload.wait()
            self._reload.clear()
            self.notifier.reloading()
            try:
                await self._reload_once()
            except Exception as exc:  # applying failed half-way: say so, keep reloading
                self.last_reload = {"ok": False, "at": datetime.now(UTC),
                                    "error": [f"{type(exc).__name__}: {exc}"]}
                log.exception("reload failed while being applied")
            finally:  # systemd must not be left in "reloading", whatever happened
                self.notifier.ready(self._status())

    async def _reload_once(self) -> None:
        """Build the new config aside and swap one reference; on failure keep the old."""
        old = self.runtime
        try:
            new = await asyncio.to_thread(load_config, self.config_path, self.environ,
                                          old.generation + 1)
        except Exception as exc:  # ConfigError, or anything unforeseen: keep the old one
            errors = ([str(i) for i in exc.issues] if isinstance(exc, ConfigError)
                      else [f"{type(exc).__name__}: {exc}"])
            self.last_reload = {"ok": False, "at": datetime.now(UTC), "error": errors}
            self.reloads["rejected"] += 1
            log.error("reload rejected; the previous config stays in force",
                      generation=old.generation, errors=errors)
        else:
            restart_only = [name for name in ("kafka", "health", "logging")
                            if getattr(new.config, name) != getattr(old.config, name)]
            if restart_only:
                log.warning("kafka, health and logging settings change only on restart",
                            sections=restart_only)
            if self.sender is not None:
                later = await self.sender.reconfigure(new.config.delivery)
                if later:
                    log.warning("these delivery settings change only on restart",
                                settings=[f"delivery.{n}" for n in later])
            if self.parking is not None and self.retries is not None and \
                    await self.parking.ensure_tiers(tiers_of(new)):
                self.retries.consumer.subscribe(self.parking.topics,
                                                listener=self.retries.listener())
            self._runtime = new
            REDACTOR.current = Redactor(new.secrets)
            if self.dispatcher is not None:
                self.dispatcher.reset_disabled()
                self.dispatcher.stats.keep(h.id for h in new.hooks)
            self.last_reload = {"ok": True, "at": new.loaded_at, "error": None}
            self.reloads["ok"] += 1
            log.info("reloaded", generation=new.generation, hooks=len(new.hooks))

    async def _watchdog_loop(self) -> None:
        interval = self.notifier.watchdog_interval
        if interval is None:
            return
        while True:
            await asyncio.sleep(interval)
            if self.source and time.monotonic() - self.source.tick < 4 * interval + 1:
                self.notifier.watchdog()  # only while the main loop is turning
                self.notifier.status(self._status())

    # -- phase 3 ---------------------------------------------------------------------------
    async def shutdown(self) -> None:
        """Stop fetching, finish in-flight work within shutdown_timeout, commit, close.

        Each closing step after the drain has its budget (`stopping.BUDGETS`): a broker
        that stops answering cannot keep the process past shutdown_timeout + STOP_BUDGET."""
        self.notifier.stopping()
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await bounded("loops", asyncio.gather(*self._tasks, return_exceptions=True))
        loops = [loop for loop in (self.source, self.retries) if loop is not None]
        for loop in loops:
            with contextlib.suppress(Exception):
                loop.consumer.pause(*loop.consumer.assignment())
        if self.dispatcher is not None:
            timeout = self.runtime.config.shutdown_timeout
            await bounded("drain", drain(self.dispatcher, timeout), beyond=timeout)
        if self.batches is not None:
            await bounded("flush", self.batches.flush())
        await bounded("commit", asyncio.gather(*(loop.commit() for loop in loops)))
        await bounded("clients", stop_clients(self.clients.values()))
        await bounded("http", self._stop_http())
        log.info("stopped")

    async def _stop_http(self) -> None:
        if self.sender is not None:
            await self.sender.close()
        if self.health is not None:
            await self.health.stop()

    # -- health ----------------------------------------------------------------------------
    def _status(self) -> str:
        return status_line(self._runtime, self.dispatcher.counters if self.dispatcher else None,
                           self._stalls())

    def _stalls(self) -> list[Problem]:
        watches = [loop.watch for loop in (self.source, self.retries) if loop is not None]
        if self.writes is not None:
            watches.append(self.writes.watch)
        return sorted((p for watch in watches for p in watch.stalls()), key=lambda p: p.since)

    def current(self) -> Runtime | None:
        """The config in force, None before startup (/metrics asks any time)."""
        return self._runtime

    def ready(self) -> bool:
        """What /readyz answers, without building its document."""
        return is_ready(self._runtime, self.source, self._stop.is_set(), self._stalls())

    def stalled(self) -> int:
        return len(self._stalls())

    def state(self) -> tuple[bool, dict[str, Any]]:
        return document(runtime=self._runtime, last_reload=self.last_reload,
                        source=self.source, retries=self.retries, ages=self.ages,
                        dispatcher=self.dispatcher, sender=self.sender,
                        stopping=self._stop.is_set(), stalls=self._stalls())

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
            return EX_CONFIG
        try:
            await run_until_stopped(self.run(), self._stop)
        finally:
            arm_last_resort(self.runtime.config.shutdown_timeout)
            await self.shutdown()
        return 1 if self.failed else 0


def _address(host: str, port: int) -> str:
    """HOST:PORT as one writes it: an IPv6 address in brackets, nothing else."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
