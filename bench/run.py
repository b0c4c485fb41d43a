# ruff: noqa: RUF001  (the multiplication and division signs in the table are meant)
"""`make bench`: hookd against the limit and against the hand-written loop, on loopback.

One run, side by side, everything on 127.0.0.1 (Apache Kafka, one KRaft node from its pinned
jars, or tansu with --broker tansu; the receiver in its own process, hookd as a real
process):

1. the limit: a plain aiohttp client POSTing the same requests (same bodies, headers,
   concurrency) to the same receiver;
2. the peer: the naive loop (consume, render, POST, commit, one at a time);
3. hookd end to end: records produced beforehand, deliveries/s at the receiver from the
   first delivery to the last (the consumer group's warm-up is not counted); and the same
   with two hookd processes in one consumer group, as hookd@.service runs one per core;
4. latency produce → receive, p50/p99, at a steady 1,000 events/s with 3 hooks per event,
   beside its floor: the same traffic read by a plain consumer (bench.floor), what the
   broker alone costs;
5. hookd's peak RSS under load;
6. 3 hooks versus 1,000 hooks (3 of them matching): throughput ratio;
7. one black-holed endpoint beside the healthy ones: the healthy throughput ratio;
8. CPU per delivery (bench.cpu) ÷ the bare client's per request (bench.http_client);
9. failover: 3 processes in one group under steady traffic, one SIGKILLed (9a) or stopped
   with SIGTERM (9b): the longest produce → first delivery; 9c: 3 static members, one
   restarted at once: no rebalance, the longest produce → first delivery;
10. scaling: deliveries/s with 1, 2 and 4 processes in one group on an 8-partition topic,
    as multiples of one process, beside the machine's core count.

Prints a table and writes `bench/results/latest.{md,json}` and `bench/results/bench.png`:
bench/results/ only, never README.md (which links latest.md; bench/README.md says what
each row means). A benchmark, not a test: it reports, and never fails because a target
is missed.

    python -m bench.run [--events 6000] [--quick] [--profile] [--src DIR]
    python -m bench.run --only scaling        # one part alone (see --only)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from array import array
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

import orjson
import yaml

from bench.common import (
    PY,
    REPO,
    WHSEC_A,
    WHSEC_B,
    Child,
    bench_hooks,
    cpu_seconds,
    http_json,
    other_hooks,
    percentiles,
    proc_status,
    receiver_stats,
    start_receiver,
    stop_children,
    wait_ready,
    write_config,
)
from hookd.config.durations import parse_duration
from hookd.dev.broker import DevBroker, create_topic, free_port
from hookd.dev.kafka import BENCH_JVM, KAFKA_VERSION, KafkaCluster
from hookd.dev.sim import Simulator
from hookd.events.decode import decode_event, make_meta
from hookd.pipeline.runtime import load_config

RESULTS = REPO / "bench" / "results"
PARTITIONS = 4
SCALING_PARTITIONS = 8  # row 10: enough for 4 processes, 2 each
CONCURRENCY = 64  # delivery.per_endpoint_in_flight (default): all bench hooks share one endpoint
SIM_CALLS = 1000  # calls in progress in the simulator: many keys, as at 1,000 events/s


@dataclass
class Row:
    what: str
    value: str
    target: str = ""
    ok: bool | None = None
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def add(self, *args: Any, **kwargs: Any) -> None:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        mark = {True: "ok  ", False: "MISS", None: "    "}[row.ok]
        print(f"  [{mark}] {row.what}: {row.value}"
              + (f"   (target {row.target})" if row.target else "")
              + (f"   {row.note}" if row.note else ""), flush=True)


def log(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)


class ExternalBroker:
    """A Kafka-protocol broker the bench does not run (`--bootstrap`): for instance an Apache
    Kafka, to see row 4 without tansu, which slows down as a topic grows."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    def start(self) -> ExternalBroker:
        return self

    def stop(self) -> None:
        pass


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.report = Report()
        self.broker: DevBroker | KafkaCluster | ExternalBroker = (
            ExternalBroker(args.bootstrap) if args.bootstrap
            else DevBroker(workdir / "broker") if args.broker == "tansu"
            else KafkaCluster(workdir / "broker", nodes=1, jvm_options=BENCH_JVM))
        # topics of their own per bench, should the broker outlive it (--bootstrap)
        self.prefix = f"bench.{time.strftime('%Y%m%d%H%M%S')}"
        self.rport = 0
        self.hole_port = 0
        self.peak_rss_kb = 0
        # `python -m` puts its working directory first on sys.path: run hookd from there
        self.src = Path(args.src).resolve() if args.src else REPO
        self.arrivals: dict[str, list[float]] = {}
        self.runs = 0  # topics made so far
        self._requests: Path | None = None  # the limit's requests, made once

    @property
    def broker_name(self) -> str:
        if self.args.bootstrap:
            return f"the broker at {self.args.bootstrap}"
        return "tansu" if self.args.broker == "tansu" else f"Apache Kafka {KAFKA_VERSION}"

    # -- plumbing ------------------------------------------------------------------------------
    def start(self) -> None:
        what = ("the receiver" if self.args.bootstrap
                else f"{self.broker_name} and the receiver")
        log(f"starting {what} in {self.workdir}")
        self.broker.start()
        _, info = start_receiver(self.workdir, "--secret", WHSEC_A, "--secret", WHSEC_B,
                                 "--blackhole", "--arrivals", "--max-seconds", "1800")
        self.rport, self.hole_port = info["port"], info["blackhole_port"]

    def fresh_topic(self, name: str) -> str:
        """A topic no run used before: tansu slows down as a topic grows, and a broker the
        bench did not start (--bootstrap) keeps what earlier benches left."""
        self.runs += 1
        return f"{self.prefix}.{name}.{self.runs}"

    def base(self) -> str:
        return f"http://127.0.0.1:{self.rport}"

    def reset(self) -> None:
        http_json(f"{self.base()}/__reset", method="POST")

    def stats(self) -> dict[str, Any]:
        return receiver_stats(self.rport)

    def fetch_floats(self, what: str) -> list[float]:
        with urllib.request.urlopen(f"{self.base()}/__{what}", timeout=30) as resp:
            data = array("d")
            data.frombytes(resp.read())
            return data.tolist()

    def produce(self, topic: str, count: int, *, rate: float = 0.0,
                duration: float | None = None, seed: int = 1) -> Child:
        argv = [PY, "-m", "hookd.dev.simcli", "--bootstrap", self.broker.bootstrap,
                "--topic", topic,
                "--rate", str(rate), "--seed", str(seed), "--concurrency", str(SIM_CALLS),
                "--stamp", "sent_at", "--count", str(count)]
        if duration is not None:
            argv += ["--duration", str(duration)]
        return Child(f"sim-{topic}", argv, log=self.workdir / f"sim-{topic}.log")

    def preproduce(self, topic: str, count: int) -> None:
        asyncio.run(create_topic(self.broker.bootstrap, topic, PARTITIONS))
        sim = self.produce(topic, count)
        if sim.proc.wait(120) != 0:
            raise RuntimeError(f"hookd-sim failed, see {sim.log}")
        sim.stop()

    def config(self, name: str, hooks: list[dict[str, Any]], topic: str,
               consumer: dict[str, str] | None = None) -> tuple[Path, int]:
        """`consumer`: kafka.consumer settings instead of write_config's."""
        port = free_port()
        overrides: dict[str, Any] = {}
        if self.args.no_metrics:
            overrides["health"] = {"metrics": {"enabled": False}}
        if consumer:
            overrides["kafka"] = {"consumer": consumer}
        path = write_config(self.workdir / name, bootstrap=self.broker.bootstrap, topic=topic,
                            group=f"hookd-{name}", hooks=hooks, health_port=port,
                            overrides=overrides or None)
        return path, port

    def hookd(self, name: str, config: Path, *args: str) -> Child:
        return Child(f"hookd-{name}", [PY, "-m", "hookd", "run", "-c", str(config), *args],
                     log=self.workdir / f"hookd-{name}.log", cwd=self.src)

    def group(self, name: str, config: Path, health: int,
              processes: int) -> tuple[list[int], list[Child]]:
        """`processes` hookd processes with one config (one consumer group), each with its
        health at its own port (`--health-listen`, the first at `health`), as
        hookd@.service runs them; their ports and themselves."""
        ports = [health] + [free_port() for _ in range(processes - 1)]
        return ports, [self.hookd(f"{name}.{i}", config, "--health-listen", f"127.0.0.1:{port}")
                       for i, port in enumerate(ports)]

    def wait_count(self, expected: int, timeout: float, *children: Child,
                   stall: float = 30.0) -> dict[str, Any]:
        """Until the receiver has `expected` deliveries, nothing new for `stall` s, or timeout;
        a child that exits first ends the wait (an error unless it exited 0)."""
        deadline = time.monotonic() + timeout
        last_count, last_change = -1, time.monotonic()
        while True:
            st = self.stats()
            if st["count"] >= expected:
                return st
            now = time.monotonic()
            if st["count"] != last_count:
                last_count, last_change = st["count"], now
            if now > deadline or now - last_change > stall:
                log(f"  stopped waiting at {st['count']}/{expected} deliveries")
                return st
            for child in children:
                if child.alive():
                    continue
                st = self.stats()  # all it delivered before it exited
                if st["count"] >= expected or child.proc.returncode == 0:
                    if st["count"] < expected:
                        log(f"  {child.name} finished at {st['count']}/{expected} deliveries")
                    return st
                raise RuntimeError(f"{child.name} exited early (code {child.proc.returncode});"
                                   f" see {child.log}")
            time.sleep(0.1)

    def finish_hookd(self, child: Child, kill: bool = False) -> dict[str, float]:
        peak_kb = proc_status(child.pid, "VmHWM")
        out = {"rss_mb": peak_kb / 1024, "cpu_s": cpu_seconds(child.pid),
               "cpu_system_s": cpu_seconds(child.pid, "system")}
        self.peak_rss_kb = max(self.peak_rss_kb, peak_kb)
        child.stop(timeout=3 if kill else 15)
        return out

    @staticmethod
    def rate(st: dict[str, Any]) -> float:
        span = st["last_at"] - st["first_at"]
        return (st["count"] - 1) / span if span > 0 and st["count"] > 1 else 0.0

    # -- 1. the limit -----------------------------------------------------------------------
    def requests_file(self, events: int) -> Path:
        """The exact requests hookd sends for the benchmark hooks, rendered and signed."""
        config, _ = self.config("render", bench_hooks(self.base()), "unused")
        runtime = load_config(config)
        path = self.workdir / "requests.jsonl"
        now = int(time.time())
        with path.open("wb") as out:
            for offset, ev in enumerate(Simulator(1, concurrency=SIM_CALLS).take(events)):
                value = ev.encoded(sent_at=time.time())
                event = decode_event(value, make_meta("bench", offset % PARTITIONS, offset,
                                                      ev.key.encode(), None, None))
                for hook in runtime.index.match(event.name, event.payload):
                    req = hook.render(event)
                    out.write(orjson.dumps({"method": req.method, "url": req.url,
                                            "headers": req.signed_headers(hook.signer, now),
                                            "body": req.body.decode()}) + b"\n")
        return path

    def limit(self, events: int, announce: bool = True) -> dict[str, Any]:
        """One run of the plain aiohttp client (the requests file is made on the first)."""
        if announce:
            log(f"1. the limit: plain aiohttp client, {events * 3} requests, "
                f"concurrency {CONCURRENCY}")
        if self._requests is None:
            self._requests = self.requests_file(events)
        self.reset()
        child = Child("limit", [PY, "-m", "bench.limit", str(self._requests), "--concurrency",
                                str(CONCURRENCY)], log=self.workdir / "limit.log")
        child.proc.wait(300)
        child.stop()
        st = self.stats()
        rate = self.rate(st)
        log(f"  limit: {st['count']} requests, {rate:,.0f}/s")
        return {"rate": rate}

    # -- 2. the naive loop ------------------------------------------------------------------
    def naive(self, events: int, announce: bool = True) -> dict[str, Any]:
        if announce:
            log(f"2. the naive loop: {events} events, 3 requests each, one at a time")
        topic = self.fresh_topic("naive")
        self.preproduce(topic, events)
        self.reset()
        child = Child("naive", [PY, "-m", "bench.naive", "--bootstrap", self.broker.bootstrap,
                                "--topic", topic, "--group", topic, "--base", self.base(),
                                "--count", str(events), "--max-seconds", "240"],
                      log=self.workdir / "naive.log")
        st = self.wait_count(events * 3, 260, child)
        child.stop()
        rate = self.rate(st)
        log(f"  naive: {st['count']} deliveries, {rate:,.0f}/s")
        return {"rate": rate}

    # -- 3/5/6/7. hookd end to end ------------------------------------------------------------
    def rounds(self, names: list[str], repeat: int | None = None
               ) -> dict[str, dict[str, Any]]:
        """`repeat` rounds (default `--repeat`), each running every part in `names` back to
        back (the limit, the naive loop, hookd variants; a fresh topic and group each run), so
        that runs compared with each other see the same machine: on a shared VM the same run
        varies by 2x within minutes. Per part the fastest run is kept (the slow ones measure
        the neighbours), with `runs`, its rate in each round (which `run` pairs up)."""
        rounds = self.args.repeat if repeat is None else repeat
        a = self.args
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for i in range(rounds):
            for name in names:
                if name == "limit":
                    runs[name].append(self.limit(a.events, announce=i == 0))
                elif name == "naive":
                    runs[name].append(self.naive(a.naive_events, announce=i == 0))
                else:
                    hooks, processes = self.variant(name, announce=i == 0)
                    runs[name].append(self.hookd_run(name, hooks, a.events, a.events * 3,
                                                     name == "blackhole", round_=i,
                                                     processes=processes))
        out = {}
        for name, done in runs.items():
            best = max(done, key=lambda r: r["rate"])
            best["runs"] = [round(r["rate"]) for r in done]
            best["short"] = [r["deliveries"] for r in done
                             if r.get("deliveries", 0) < r.get("expected", 0)]
            if "arrivals" in best:
                self.arrivals[name] = best["arrivals"]
            for run in done:
                run.pop("arrivals", None)
            self.report.raw[name] = out[name] = best
        return out

    def hookd_run(self, name: str, hooks: list[dict[str, Any]], events: int,
                  expected: int, blackholed: bool = False, round_: int = 0,
                  processes: int = 1) -> dict[str, Any]:
        """One run of `processes` hookd processes in one group (`group`)."""
        topic = self.fresh_topic(name)
        self.preproduce(topic, events)
        self.reset()
        config, health = self.config(topic, hooks, topic)
        ports, children = self.group(name, config, health, processes)
        profiler = None
        try:
            wait_ready(ports[0], 60, children[0])  # the others may still wait for partitions
            cpu_ready = [cpu_seconds(child.pid) for child in children]
            if self.args.profile == name and round_ == 0:
                profiler = self.start_profiler(children[0])
            st = self.wait_count(expected, 300, *children)
            readies = [http_json(f"http://127.0.0.1:{port}/readyz")[1] or {} for port in ports]
        finally:
            if profiler is not None:
                self.finish_profiler(profiler)
            results = [self.finish_hookd(child, kill=blackholed) for child in children]
        rate = self.rate(st)
        arrivals = [t - st["first_at"] for t in self.fetch_floats("arrivals")]
        cpu = sum(r["cpu_s"] for r in results) - sum(cpu_ready)
        out = {"rate": rate, "deliveries": st["count"], "expected": expected,
               "processes": processes,
               "signatures": st["signatures"], "duplicates": st["duplicates"],
               "counters": [r.get("counters") for r in readies],
               "open_circuits": [r.get("open_circuits") for r in readies],
               "assigned": [r.get("assigned_partitions") for r in readies],
               "cpu_us_per_delivery": cpu / max(st["count"], 1) * 1e6,
               "arrivals": arrivals, "rss_mb": max(r["rss_mb"] for r in results),
               "cpu_s": sum(r["cpu_s"] for r in results),
               "cpu_system_s": sum(r["cpu_system_s"] for r in results)}
        log(f"  {name}: {st['count']}/{expected} deliveries, {rate:,.0f}/s, "
            f"{out['cpu_us_per_delivery']:.0f} us CPU per delivery ({out['cpu_system_s']:.1f} s "
            f"in the kernel, in all), peak RSS {out['rss_mb']:.0f} MB"
            + (f" per process, {processes} processes" if processes > 1 else ""))
        return out

    def start_profiler(self, child: Child) -> Child:
        RESULTS.mkdir(parents=True, exist_ok=True)
        py_spy = Path(PY).parent / "py-spy"
        return Child("py-spy", [str(py_spy), "record", "-p", str(child.pid), "-r", "250",
                                "-d", "15", "--nonblocking", "-f", "raw", "-o",
                                str(self.workdir / "profile.txt")],
                     log=self.workdir / "py-spy.log")

    def finish_profiler(self, profiler: Child) -> None:
        profiler.send(signal.SIGINT)
        with contextlib.suppress(Exception):
            profiler.proc.wait(20)
        profiler.stop()
        raw = self.workdir / "profile.txt"
        if raw.exists():
            summary = summarize_profile(raw)
            (RESULTS / "profile.txt").write_text(summary)
            log("  profile summary written to bench/results/profile.txt")

    # -- 4. latency -----------------------------------------------------------------------------
    def latency(self, rate: float, seconds: float, name: str = "latency",
                extra_hooks: list[dict[str, Any]] | None = None,
                processes: int = 1) -> dict[str, Any]:
        log(f"4. latency: {rate:.0f} events/s for {seconds:.0f} s, 3 hooks per event"
            + (f" + {len(extra_hooks)} black-holed" if extra_hooks else "")
            + (f", {processes} hookd processes in one group" if processes > 1 else ""))
        topic = self.fresh_topic(name)
        asyncio.run(create_topic(self.broker.bootstrap, topic, PARTITIONS))
        hooks = [*bench_hooks(self.base()), *(extra_hooks or [])]
        config, health = self.config(topic, hooks, topic)
        ports, children = self.group(name, config, health, processes)
        try:
            for port, one in zip(ports, children, strict=True):
                wait_ready(port, 60, one)  # every member holds partitions: no rebalance later
            self.reset()
            sim = self.produce(topic, int(rate * seconds), rate=rate, duration=seconds)
            time.sleep(min(2.0, seconds / 5))
            self.reset()  # measure the steady state, not the first second
            sim.proc.wait(seconds + 60)
            sim.stop()
            produced = _last_json(sim.log)
            st = self.wait_count(10**9, 20, *children, stall=2.0)  # drain: until it stops
            # how old records were when hookd took them: the part of the latency before it
            # (the first process's, with several)
            _, health_doc = http_json(f"http://127.0.0.1:{health}/healthz", timeout=5)
        finally:
            finished = [self.finish_hookd(one) for one in children]
        res = finished[0]  # (the first process's CPU and RSS)
        lat = sorted(self.fetch_floats("latencies"))
        self.arrivals[name] = [t - st["first_at"] for t in self.fetch_floats("arrivals")]
        taken = (health_doc or {}).get("event_age_ms") or {}
        out = {**percentiles(lat), "delivery_rate": self.rate(st), "sim": produced,
               "taken": taken, **res}
        self.report.raw[name] = out
        self.report.raw[f"{name}_ms"] = lat[:: max(1, len(lat) // 5000)]
        log(f"  latency p50 {out['p50_ms']:.1f} ms, p99 {out['p99_ms']:.1f} ms over "
            f"{len(lat)} deliveries ({out['delivery_rate']:,.0f}/s); records taken by hookd "
            f"at {_ages(taken)} (its event_age_ms, last {taken.get('records', 0)} records)")
        return out

    def floor(self, rate: float, seconds: float) -> dict[str, Any]:
        """4's floor: the same traffic on the same broker, read by a plain consumer that
        does nothing else (bench.floor): the part of the latency that is the broker's."""
        log("4. the floor: a plain consumer of the same traffic (no matching, no HTTP)")
        topic = self.fresh_topic("floor")
        asyncio.run(create_topic(self.broker.bootstrap, topic, PARTITIONS))
        count = int(rate * seconds)
        child = Child("floor", [PY, "-m", "bench.floor", "--bootstrap", self.broker.bootstrap,
                                "--topic", topic, "--group", topic, "--count", str(count),
                                "--skip", str(min(2.0, seconds / 5)),
                                "--max-seconds", str(seconds + 120)],
                      log=self.workdir / "floor.log", pipe=True)
        try:
            child.json_line(60)  # it has its partitions
            sim = self.produce(topic, count, rate=rate, duration=seconds)
            sim.proc.wait(seconds + 60)
            sim.stop()
            out = child.json_line(120)
        finally:
            child.stop()
        self.report.raw["latency_floor"] = out
        log(f"  floor p50 {out['p50_ms']:.1f} ms, p99 {out['p99_ms']:.1f} ms over "
            f"{out['samples']} records")
        return out

    # -- 3/6/7. the three throughput runs -------------------------------------------------------
    def hole_hook(self) -> dict[str, Any]:
        """A hook to the receiver's port that accepts connections and never answers."""
        return {"id": "partner-blackholed", "event": "*",
                "request": {"url": f"http://127.0.0.1:{self.hole_port}/hook"}}

    def variant(self, name: str, announce: bool = True) -> tuple[list[dict[str, Any]], int]:
        """The hooks and the number of processes of a throughput run: e2e (3 hooks), e2e_x2
        (the same, 2 processes), hooks1000 (+ 997 that never match) or blackhole (+ a dead
        one)."""
        hooks = bench_hooks(self.base())
        say = log if announce else (lambda _text: None)
        if name == "e2e":
            say(f"3. hookd end to end: {self.args.events} events pre-produced, 3 hooks per event")
        elif name == "e2e_x2":
            say("3c. the same, two hookd processes in one consumer group (one per core)")
            return hooks, 2
        elif name == "hooks1000":
            say("6. 1,000 hooks, 3 of them matching each event")
            hooks += other_hooks(997, self.base())
        elif name == "blackhole":
            say("7. one black-holed endpoint beside the healthy ones")
            hooks.append(self.hole_hook())
        else:
            raise ValueError(f"no throughput run {name!r}")
        return hooks, 1

    def partial(self, which: list[str]) -> None:
        """`--only`: the named parts, each hookd throughput run once."""
        a = self.args
        for name in which:
            if name in ("limit", "naive", "e2e", "e2e_x2", "hooks1000", "blackhole"):
                self.rounds([name], repeat=1)
            elif name == "latency":
                self.latency(a.rate, a.latency_seconds)
            elif name == "floor":
                self.floor(a.rate, a.latency_seconds)
            elif name == "latency_x2":  # as hookd@.service runs it on two cores
                self.latency(a.rate, a.latency_seconds, "latency_x2", processes=2)
            elif name == "cpu":  # row 8 alone
                self.cpu_ratio()
            elif name in ("failover", "failover-term"):  # row 9 alone
                self.failover(signal.SIGKILL if name == "failover" else signal.SIGTERM)
            elif name == "failover-static":  # row 9c alone
                self.failover(signal.SIGTERM, static=True)
            elif name == "scaling":  # row 10 alone
                self.scaling()
            elif name == "latency-blackhole":  # the healthy hooks' latency beside a dead one
                self.latency(a.rate, a.latency_seconds, "latency_blackhole", [self.hole_hook()])
            else:
                raise SystemExit(f"unknown part {name!r}")

    # -- everything -------------------------------------------------------------------------------
    def run(self) -> Report:
        a = self.args
        r = self.report
        started = time.monotonic()
        runs = self.rounds(["limit", "naive", "e2e", "e2e_x2", "hooks1000", "blackhole"])
        limit, naive, e2e, pair, many, hole = (runs[n] for n in (
            "limit", "naive", "e2e", "e2e_x2", "hooks1000", "blackhole"))
        lat = self.latency(a.rate, a.latency_seconds)
        floor = self.floor(a.rate, a.latency_seconds)
        cpu = self.cpu_ratio()
        kill = self.failover(signal.SIGKILL)
        term = self.failover(signal.SIGTERM)
        static = self.failover(signal.SIGTERM, static=True)
        scale = self.scaling()

        def paired(num: dict[str, Any], den: dict[str, Any]) -> list[float]:
            return [_ratio(x, y) for x, y in zip(num["runs"], den["runs"], strict=True)]

        r.add("1. limit: plain aiohttp client, same requests and concurrency",
              f"{limit['rate']:,.0f} req/s", note=_spread(limit))
        r.add("2. peer: naive loop (consume, render, POST, commit; one at a time)",
              f"{naive['rate']:,.0f} deliveries/s", note=_spread(naive))
        r.add("3. hookd end to end (pre-produced, first → last delivery)",
              f"{e2e['rate']:,.0f} deliveries/s", note="; ".join(filter(None, [
                  f"{e2e['cpu_us_per_delivery']:.0f} µs CPU per delivery", _spread(e2e)])))
        ratios = paired(e2e, limit)
        r.add("3a. hookd ÷ limit", _shown(ratios, target=0.85), "≥ 0.85×", median(ratios) >= 0.85)
        ratios = paired(e2e, naive)
        r.add("3b. hookd ÷ naive loop", _shown(ratios, 1, 6), "≥ 6×", median(ratios) >= 6,
              f"the limit itself: {_shown(paired(limit, naive), 1)} naive")  # 3b's ceiling
        ratios = paired(pair, naive)
        r.add("3c. hookd, 2 processes in one group (hookd@.service, one per core)",
              f"{pair['rate']:,.0f} deliveries/s", "≥ 6× naive", median(ratios) >= 6,
              f"{_shown(ratios, 1, 6)} naive, {_shown(paired(pair, limit))} limit, "
              f"{_shown(paired(pair, e2e))} one process")
        ok_lat = lat["p99_ms"] <= 50
        taken = lat.get("taken") or {}
        r.add(f"4. latency produce → receive at {a.rate:,.0f} ev/s × 3 hooks, p50 / p99",
              f"{lat['p50_ms']:.1f} / {lat['p99_ms']:.1f} ms", "p99 ≤ 50 ms", ok_lat,
              f"{lat['delivery_rate']:,.0f} deliveries/s; records were taken by hookd at "
              f"{_ages(taken, table=True)} (its event_age_ms); "
              f"the broker alone (a plain consumer, same traffic, nothing else running): "
              f"{floor['p50_ms']:.1f} / {floor['p99_ms']:.1f} ms")
        added = lat["p99_ms"] - taken["p99"] if taken.get("records") else float("nan")
        r.add("4a. latency added by hookd: receiver p99 − hookd's taken-at p99 (event_age_ms), "
              "same run", f"{added:.1f} ms", "≤ 5 ms", added <= 5,
              "the time from hookd's fetch to the receiver, at the tail")
        rss = self.peak_rss_kb / 1024
        r.add("5. hookd peak RSS under load", f"{rss:.0f} MB", "≤ 150 MB", rss <= 150)
        ratios = paired(many, e2e)
        r.add("6. 1,000 hooks ÷ 3 hooks (3 matching), throughput",
              f"{_shown(ratios, target=0.9)} ({many['rate']:,.0f}/s)", "≥ 0.9×",
              median(ratios) >= 0.9)
        ratios = paired(hole, e2e)
        r.add("7. healthy throughput beside a black-holed endpoint",
              f"{_shown(ratios, target=0.9)} ({hole['rate']:,.0f}/s)", "≥ 0.9×",
              median(ratios) >= 0.9 and not hole["short"],
              f"only {min(hole['short'])}/{hole['expected']} delivered" if hole["short"] else "")
        ok_cpu = cpu["ratio"] <= 2.5
        r.add("8. CPU per healthy delivery ÷ the bare client's per request (3 hooks: signed, "
              "rendered, one log line each)", f"{cpu['ratio']:.1f}×", "≤ 2.5×", ok_cpu,
              f"{cpu['delivery_us']:.0f} µs per delivery (bench.cpu) against "
              f"{cpu['request_us']:.1f} µs per request (bench.http_client), this run; beside "
              f"a black-holed hook {cpu['blackhole_ratio']:.1f}×, with 997 hooks that never "
              f"match {cpu['others_ratio']:.1f}×; where it goes (bench.stages, µs): "
              + ", ".join(f"{k} {v:.1f}" for k, v in cpu["stages_us"].items() if k != "encode")
              + f", the request (the bare client's) {cpu['request_us']:.1f}, the rest "
              f"(tasks, order per key, slots, circuits, stats) {cpu['bookkeeping_us']:.0f}")
        for fo, row, what, target, bound in (
                (kill, "9a", "SIGKILLed", "≤ 1.3× the session timeout",
                 1.3 * kill["session_s"]),
                (term, "9b", "stopped with SIGTERM", "≤ 2 s", 2.0)):
            r.add(f"{row}. failover: 3 processes in one group, one {what} under "
                  f"{fo['rate']:,.0f} ev/s: the longest produce → first delivery",
                  f"{fo['max_s']:.1f} s", target, fo["max_s"] <= bound,
                  f"{fo['max_s'] / fo['session_s']:.2f}× the {fo['session_s']:g} s session "
                  f"timeout (heartbeat {fo['heartbeat_s']:g} s); p99 {fo['p99_ms']:.0f} ms; "
                  f"{fo['duplicates']} redelivered, "
                  f"{fo['delivered']:,} of {fo['expected']:,} first deliveries")
        r.add(f"9c. failover: 3 static members (kafka.group_instance_id), one restarted "
              f"(SIGTERM, started again at once) under {static['rate']:,.0f} ev/s: the longest "
              "produce → first delivery, and the rebalances the others saw",
              f"{static['max_s']:.1f} s, {static['rebalances']} rebalances",
              "no rebalance, ≤ 2 s", static["max_s"] <= 2.0 and static["rebalances"] == 0,
              f"back in {static['restart_s']:.1f} s (process start to ready); the restarted "
              f"member's partitions {'the same' if static['same_partitions'] else 'CHANGED'}; "
              f"session timeout {static['session_s']:g} s; p99 {static['p99_ms']:.0f} ms; "
              f"{static['duplicates']} redelivered, "
              f"{static['delivered']:,} of {static['expected']:,} first deliveries")
        by = scale["by_processes"]
        short = [f"{n} processes: only {min(v['short']):,} of {v['expected']:,} delivered"
                 for n, v in by.items() if v["short"]]
        r.add(f"10. scaling: deliveries/s with {', '.join(str(n) for n in by)} processes in "
              f"one group ({scale['partitions']} partitions; the backlog left once the producer, "
              "faster than the group, finished), as multiples of one process",
              " / ".join(f"{v['rate']:,.0f}" for v in by.values()) + " deliveries/s = "
              + " / ".join("1×" if n == 1 else _shown(v["ratios"]) for n, v in by.items()),
              note="; ".join([f"**{scale['cores']} cores** (os.cpu_count()), shared with the "
                              "broker, the receiver and the producer; fastest of "
                              f"{len(next(iter(by.values()))['runs'])} runs each, ratios "
                              "the median of the rounds' [range]", *short]))
        r.raw["seconds"] = round(time.monotonic() - started)
        return r

    def failover(self, sig: signal.Signals, rate: float = 200.0, seconds: float = 30.0,
                 at: float = 8.0, static: bool = False) -> dict[str, Any]:
        """Row 9: three processes in one group under steady traffic; one of them gets `sig`
        `at` seconds in. The events of its partitions wait for the group to hand them on
        (a SIGKILL: the session timeout, then the rebalance; a SIGTERM: LeaveGroup, then
        the rebalance): the longest produce → first delivery says how long.

        `static` (row 9c): each process a static member (its own kafka.group_instance_id);
        the stopped one is started again at once, within the session timeout, so the group
        should not rebalance: its partitions wait only for it to come back."""
        name = f"failover-{sig.name.lower()}" + ("-static" if static else "")
        log(f"9. failover: 3 processes, one {sig.name} at {at:g} s of {seconds:g} s "
            f"at {rate:.0f} events/s")
        topic = self.fresh_topic(name)
        asyncio.run(create_topic(self.broker.bootstrap, topic, PARTITIONS))
        timings = {key: value for key, value in (
            ("session_timeout", self.args.session_timeout),
            ("heartbeat_interval", self.args.heartbeat_interval)) if value}
        config, health = self.config(topic, bench_hooks(self.base()), topic, timings)
        consumer = yaml.safe_load(config.read_text())["kafka"]["consumer"]
        session = parse_duration(consumer["session_timeout"])
        heartbeat = parse_duration(consumer["heartbeat_interval"])
        # started one after the other, as a deployment's processes are: each join is a
        # rebalance, so the group's generation is past tansu's first (0), in which aiokafka
        # sends no LeaveGroup on a stop (a real Kafka starts at 1; BROKER_NOTES.md)
        ports = [health, free_port(), free_port()]
        configs = [self.static_config(config, i) if static else config for i in range(3)]
        children = []
        restart: dict[str, Any] = {}
        counted = 0
        try:
            for i, port in enumerate(ports):
                children.append(self.hookd(f"{name}.{i}", configs[i], "--health-listen",
                                           f"127.0.0.1:{port}"))
                wait_ready(port, 60, children[-1])
            for port, one in zip(ports, children, strict=True):
                wait_ready(port, 60, one)  # each holds partitions after the last rebalance
            time.sleep(session / 2)  # (and the group has settled)
            self.settled(ports, children, PARTITIONS)
            self.reset()
            sim = self.produce(topic, int(rate * seconds), rate=rate, duration=seconds)
            time.sleep(at)
            if static:
                counted = sum(_assignments(one.log) for one in (children[0], children[2]))
                children[1], restart = self.restart_member(children[1], configs[1], ports,
                                                           f"{name}.1")
            else:
                children[1].proc.send_signal(sig)
            sim.proc.wait(seconds + 60)
            sim.stop()
            expected = 3 * int(rate * seconds)
            self.wait_count(expected, 60, children[0], children[2], stall=session + 10)
            deadline = time.monotonic() + session + 10  # (the count above has redeliveries)
            while (st := self.stats())["latencies"] < expected and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            for one in children:
                if one.alive():
                    self.finish_hookd(one)
        lat = sorted(self.fetch_floats("latencies"))
        out = {"rate": rate, "session_s": session, "heartbeat_s": heartbeat,
               "max_s": lat[-1] if lat else float("nan"),
               "p99_ms": percentiles(lat)["p99_ms"] if lat else float("nan"),
               "duplicates": st["duplicates"], "delivered": len(lat), "expected": expected,
               **restart}
        if static:
            out["rebalances"] = sum(_assignments(one.log) for one in (children[0], children[2]))
            out["rebalances"] -= counted
        self.report.raw[name] = out
        log(f"  longest produce → first delivery {out['max_s']:.1f} s "
            f"({out['max_s'] / session:.2f}x the {session:g} s session timeout, heartbeat "
            f"{heartbeat:g} s), "
            f"{out['duplicates']} redelivered, {len(lat)}/{expected} first deliveries")
        return out

    @staticmethod
    def static_config(config: Path, member: int) -> Path:
        """A copy of `config` for static member `member` (its own group_instance_id)."""
        data = yaml.safe_load(config.read_text())
        data["kafka"]["group_instance_id"] = f"bench-member-{member}"
        path = config.with_name(f"{config.stem}.static{member}{config.suffix}")
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def restart_member(self, child: Child, config: Path, ports: list[int],
                       name: str) -> tuple[Child, dict[str, Any]]:
        """Row 9c: SIGTERM a static member, start it again at once with the same config
        (the same group_instance_id); how long it was gone, whether it got its partitions
        back, and the others' assignments so far (any later one is a rebalance)."""
        port = ports[1]
        before = (http_json(f"http://127.0.0.1:{port}/readyz", timeout=2)[1] or {}).get(
            "assigned_partitions") or []
        started = time.monotonic()
        child.stop(timeout=15)
        again = self.hookd(f"{name}.again", config, "--health-listen", f"127.0.0.1:{port}")
        wait_ready(port, 60, again)
        after: list[Any] = []
        deadline = time.monotonic() + 30
        while not after and time.monotonic() < deadline:
            after = (http_json(f"http://127.0.0.1:{port}/readyz", timeout=2)[1] or {}).get(
                "assigned_partitions") or []
            time.sleep(0.05)
        took = time.monotonic() - started
        log(f"  static member back in {took:.1f} s with {after} (before: {before})")
        return again, {"restart_s": took, "same_partitions": sorted(before) == sorted(after)}

    def settled(self, ports: list[int], children: list[Child], partitions: int,
                timeout: float = 90.0) -> None:
        """Until every process holds partitions and together they hold all `partitions`,
        twice in a row 1 s apart (a group still rebalancing revokes them all first)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for child in children:
                if not child.alive():
                    raise RuntimeError(f"{child.name} exited (code {child.proc.returncode});"
                                       f" see {child.log}")
            held = [(http_json(f"http://127.0.0.1:{port}/readyz", timeout=2)[1] or {})
                    .get("assigned_partitions") or [] for port in ports]
            if all(held) and len({p for one in held for p in one}) == partitions:
                seen += 1
                if seen == 2:
                    return
                time.sleep(1.0)
                continue
            seen = 0
            time.sleep(0.2)
        raise TimeoutError(f"the group of {len(ports)} did not settle within {timeout:g} s")

    def scaling_run(self, processes: int, events: int, announce: bool = False
                    ) -> dict[str, Any]:
        """One run of row 10: `processes` hookd processes in one group on a topic of
        SCALING_PARTITIONS partitions; once the group has settled (every process holds
        partitions), `events` are produced as fast as the producer goes, faster than they
        are delivered. The rate is that of the backlog left when the producer finished,
        drained by the group alone: consumption-bound."""
        if announce:
            log(f"10. scaling: 1, 2 and 4 hookd processes in one group, "
                f"{SCALING_PARTITIONS} partitions, {events} events × 3 hooks produced once "
                f"the group has settled; {os.cpu_count()} cores")
        name = f"scaling{processes}"
        topic = self.fresh_topic(name)
        asyncio.run(create_topic(self.broker.bootstrap, topic, SCALING_PARTITIONS))
        config, health = self.config(topic, bench_hooks(self.base()), topic)
        ports, children = self.group(name, config, health, processes)
        expected = 3 * events
        try:
            self.settled(ports, children, SCALING_PARTITIONS)
            cpu_ready = [cpu_seconds(child.pid) for child in children]
            self.reset()
            started = time.time()
            sim = self.produce(topic, events)
            if sim.proc.wait(120) != 0:
                raise RuntimeError(f"hookd-sim failed, see {sim.log}")
            produced_at = time.time()
            sim.stop()
            at_produced = self.stats()["count"]
            st = self.wait_count(expected, 300, *children)
            cpu = sum(cpu_seconds(child.pid) for child in children) - sum(cpu_ready)
        finally:
            for child in children:
                self.finish_hookd(child)
        # the backlog left when the producer finished, drained by the group alone (the
        # producer's CPU no longer competes): the figure shown; first → last beside it
        tail = st["count"] - at_produced
        rate = tail / (st["last_at"] - produced_at) if st["last_at"] > produced_at else 0.0
        out = {"processes": processes, "rate": rate, "rate_all": self.rate(st),
               "deliveries": st["count"],
               "expected": expected, "duplicates": st["duplicates"],
               "produce_s": produced_at - started,
               "delivered_when_produced": at_produced,
               "cpu_us_per_delivery": cpu / max(st["count"], 1) * 1e6}
        log(f"  {processes} process{'es' if processes > 1 else ''}: {st['count']}/{expected} "
            f"deliveries; produced in {out['produce_s']:.1f} s, by then {at_produced:,} "
            f"delivered; the other {tail:,} at {rate:,.0f}/s (first → last "
            f"{out['rate_all']:,.0f}/s), {out['cpu_us_per_delivery']:.0f} µs CPU per "
            "delivery")
        return out

    def scaling(self, counts: tuple[int, ...] = (1, 2, 4)) -> dict[str, Any]:
        """Row 10: deliveries/s with each of `counts` processes, in `--scaling-rounds`
        rounds each running every count back to back; per count the fastest run, and its
        ratio to one process as the median of the rounds' (paired within a round)."""
        a = self.args
        runs: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
        for _ in range(a.scaling_rounds):
            for n in counts:
                runs[n].append(self.scaling_run(n, a.scaling_events, announce=not any(
                    runs.values())))
        one = [r["rate"] for r in runs[counts[0]]]
        out: dict[str, Any] = {"cores": os.cpu_count(), "partitions": SCALING_PARTITIONS,
                               "events": a.scaling_events, "by_processes": {}}
        for n in counts:
            best = max(runs[n], key=lambda r: r["rate"])
            out["by_processes"][n] = {
                **best, "runs": [round(r["rate"]) for r in runs[n]],
                "ratios": [_ratio(r["rate"], base) for r, base in zip(runs[n], one,
                                                                       strict=True)],
                "short": [r["deliveries"] for r in runs[n] if r["deliveries"] < r["expected"]]}
        self.report.raw["scaling"] = out
        log("  scaling: " + ", ".join(
            f"{n}: {v['rate']:,.0f}/s ({_shown(v['ratios'])})"
            for n, v in out["by_processes"].items()) + f"; {out['cores']} cores")
        return out

    def cpu_ratio(self, events: int = 3000) -> dict[str, Any]:
        """Row 8: hookd's CPU per delivery in-process (bench.cpu, no broker: decode, match,
        render, sign, log, send, bookkeeping) ÷ the bare client's CPU per request
        (bench.http_client, the same requests), measured one after the other. Each is the
        best of its runs: the least disturbed by the rest of the machine."""
        def run(*argv: str) -> Any:
            proc = subprocess.run([PY, "-m", *argv, "--json"], capture_output=True, text=True,
                                  check=True, cwd=self.src)
            return json.loads(proc.stdout.strip().splitlines()[-1])

        warm = str(max(300, events // 6))
        plain = min(run("bench.cpu", "--events", str(events), "--warm", warm)
                    ["cpu_us_per_delivery"] for _ in range(2))
        hole = run("bench.cpu", "--events", str(events), "--warm", warm, "--blackhole")
        others = run("bench.cpu", "--events", str(events), "--warm", warm, "--others", "997")
        client = min(run("bench.http_client", "--requests", "10000")["hookd client"]
                     ["cpu_us_per_request"] for _ in range(2))
        stages = run("bench.stages")  # each stage alone: where the CPU goes
        out = {"delivery_us": plain, "request_us": client, "ratio": plain / client,
               "blackhole_ratio": hole["cpu_us_per_delivery"] / client,
               "others_ratio": others["cpu_us_per_delivery"] / client,
               "stages_us": stages,
               # the rest: tasks, ordering, slots, circuits, stats (encode is in the client's)
               "bookkeeping_us": plain - client - sum(v for k, v in stages.items()
                                                      if k != "encode")}
        log(f"  cpu: {plain:.1f} us per delivery, {client:.1f} us per request: "
            f"{out['ratio']:.1f}x")
        self.report.raw["cpu"] = out
        return out


def _shown(ratios: list[float], digits: int = 2, target: float | None = None) -> str:
    """Ratios of runs made in the same round: their median, and their spread. Near its
    `target`, one more digit, so that a miss never reads as the target (0.899, not 0.90)."""
    if target is not None:
        while digits < 4 and (round(median(ratios), digits) >= target) != (
                median(ratios) >= target):
            digits += 1
    if len(ratios) == 1:
        return f"{ratios[0]:.{digits}f}×"
    return (f"{median(ratios):.{digits}f}× [{min(ratios):.{digits}f}–"
            f"{max(ratios):.{digits}f}]")


def _spread(run: dict[str, Any]) -> str:
    """The fastest run is shown; this says how the others went."""
    rates = run["runs"]
    return f"fastest of {len(rates)}, slowest {min(rates):,}" if len(rates) > 1 else ""


def _assignments(log_path: Path | None) -> int:
    """How many times a hookd process logged a source assignment (each after a rebalance)."""
    if log_path is None or not log_path.exists():
        return 0
    count = 0
    for line in log_path.read_text(errors="replace").splitlines():
        if '"partitions assigned"' in line and '"consumer":"source"' in line:
            count += 1
    return count


def _ratio(num: float, den: float) -> float:
    """num / den; NaN when den is 0 (a run that delivered nothing), which misses any target."""
    return num / den if den > 0 else float("nan")


def _last_json(path: Path | None) -> dict[str, Any]:
    if path is None or not path.exists():
        return {}
    for line in reversed(path.read_text().splitlines()):
        with contextlib.suppress(ValueError):
            doc = json.loads(line)
            if isinstance(doc, dict):
                return doc
    return {}


def _ages(taken: dict[str, Any], table: bool = False) -> str:
    """hookd's event_age_ms, p50 and p99 ("n/a" when its /healthz gave none)."""
    if not taken.get("records"):
        return "n/a"
    if table:
        return f"{taken['p50']:.1f} / {taken['p99']:.1f} ms"
    return f"p50 {taken['p50']:.1f} ms, p99 {taken['p99']:.1f} ms"


def summarize_profile(raw: Path, top: int = 25) -> str:
    """py-spy's collapsed stacks → the functions with the most samples, self and inclusive."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n
    packages: dict[str, int] = {}
    for frame, n in own.items():
        where = frame.rsplit("(", 1)[-1].rstrip(")")
        package = where.split("/")[0] if "/" in where else where.split(":")[0]
        packages[package] = packages.get(package, 0) + n
    lines = [f"py-spy samples: {total}", "",
             "self time by package or file (the innermost frame; uvloop resumes coroutines "
             "from C, so inclusive figures undercount the event loop's callers):"]
    lines += [f"  {100 * n / total:5.1f}%  {p}" for p, n in
              sorted(packages.items(), key=lambda kv: -kv[1])[:15]]
    lines += ["", "inclusive:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in
              sorted(incl.items(), key=lambda kv: -kv[1])[:top]]
    lines += ["", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in
              sorted(own.items(), key=lambda kv: -kv[1])[:top]]
    return "\n".join(lines) + "\n"


# -- output --------------------------------------------------------------------------------------
def machine() -> str:
    load = os.getloadavg()[0]
    return (f"{platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, load {load:.1f} at start")


def markdown(report: Report, args: argparse.Namespace, load: str) -> str:
    lines = ["| # | measure | result | target | |", "|---|---|---|---|---|"]
    for row in report.rows:
        num, _, what = row.what.partition(". ")
        mark = {True: "✅", False: "❌", None: ""}[row.ok]
        note = f" — {row.note}" if row.note else ""
        lines.append(f"| {num} | {what} | {row.value}{note} | {row.target} | {mark} |")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines.append("")
    lines.append(f"`make bench`, {stamp}: {args.events:,} events × 3 hooks per hookd run, "
                 f"{args.naive_events:,} for the naive loop; {args.repeat} rounds, each running "
                 "every throughput measure back to back (a ratio is the median of the rounds' "
                 f"[range]); {load}; "
                 f"{report.raw.get('seconds', 0)} s in all.")
    return "\n".join(lines) + "\n"


def chart(report: Report, arrivals: dict[str, list[float]], path: Path) -> None:
    try:  # the bench extra; `make typecheck` runs without it, hence the ignores
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        log("matplotlib missing (pip install -e '.[bench]'): no chart")
        return
    raw = report.raw
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    labels = {"e2e": "hookd, 3 hooks", "e2e_x2": "hookd × 2 processes, 3 hooks",
              "hooks1000": "hookd, 1,000 hooks",
              "blackhole": "hookd, + black-holed endpoint (healthy only)",
              "latency": f"hookd at {raw.get('rate', 1000):,.0f} ev/s × 3",
              "latency_blackhole": f"hookd at {raw.get('rate', 1000):,.0f} ev/s × 3 "
                                   "+ black-holed endpoint"}
    for name, times in arrivals.items():
        if not times:
            continue
        step = 0.5
        buckets = [0] * (int(max(times) / step) + 1)
        for t in times:
            buckets[int(t / step)] += 1
        ax1.plot([i * step for i in range(len(buckets))], [b / step for b in buckets],
                 label=labels.get(name, name), linewidth=1.4)
    ax1.axhline(raw.get("limit", {}).get("rate", 0), color="black", linestyle="--", linewidth=1,
                label="limit: plain aiohttp client")
    ax1.axhline(raw.get("naive", {}).get("rate", 0), color="grey", linestyle=":", linewidth=1.2,
                label="naive loop")
    ax1.set_xlabel("seconds since the first delivery")
    ax1.set_ylabel("deliveries / s at the receiver")
    ax1.set_title("Throughput")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    lat = [v * 1000 for v in raw.get("latency_ms", [])]
    if lat:
        lat.sort()
        ax2.plot(lat, [i / len(lat) for i in range(len(lat))], linewidth=1.6)
        for p, style in ((0.5, ":"), (0.99, "--")):
            ax2.axvline(lat[min(len(lat) - 1, int(p * len(lat)))], color="grey",
                        linestyle=style, linewidth=1, label=f"p{int(p * 100)}")
        ax2.axvline(50, color="red", linewidth=1, label="target p99 50 ms")
        ax2.set_xscale("log")
        ax2.legend(fontsize=8)
    ax2.set_xlabel("produce → receive latency, ms (log)")
    ax2.set_ylabel("share of deliveries")
    ax2.set_title("Latency at a steady rate (CDF)")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(report: Report, bench: Bench, args: argparse.Namespace, load: str) -> str:
    RESULTS.mkdir(parents=True, exist_ok=True)
    table = markdown(report, args, f"on {bench.broker_name}, {load}")
    (RESULTS / "latest.md").write_text(table)
    raw = {k: v for k, v in report.raw.items() if k != "latency_ms"}
    (RESULTS / "latest.json").write_text(json.dumps(
        {"rows": [asdict(r) for r in report.rows], "raw": raw, "machine": load,
         "args": vars(args)}, indent=2, default=str) + "\n")
    report.raw["rate"] = args.rate
    chart(report, bench.arrivals, RESULTS / "bench.png")
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=6000, help="events per hookd run")
    p.add_argument("--naive-events", type=int, default=1500)
    p.add_argument("--rate", type=float, default=1000.0, help="events/s of the latency run")
    p.add_argument("--latency-seconds", type=float, default=20.0)
    p.add_argument("--repeat", type=int, default=5,
                   help="runs of the limit, and rounds of the hookd throughput runs (the "
                        "fastest run is kept; ratios to e2e are the median of the rounds)")
    p.add_argument("--quick", action="store_true", help="small runs, to try the bench out")
    p.add_argument("--profile", nargs="?", const="e2e", default=None, metavar="RUN",
                   help="py-spy hookd during one throughput run (default e2e; or hooks1000, "
                        "blackhole): bench/results/profile.txt")
    p.add_argument("--src", help="run hookd from this source tree (e.g. with a proposal)")
    p.add_argument("--broker", choices=("kafka", "tansu"), default="kafka",
                   help="the broker the bench starts: Apache Kafka (KRaft, one node; default) "
                        "or tansu (Python only)")
    p.add_argument("--bootstrap", metavar="HOST:PORT",
                   help="use this broker instead of starting tansu (it gets topics named "
                        "bench.<time>.*, with one replica)")
    p.add_argument("--session-timeout", metavar="DURATION",
                   help="row 9 (failover): kafka.consumer.session_timeout (default 6s)")
    p.add_argument("--heartbeat-interval", metavar="DURATION",
                   help="row 9 (failover): kafka.consumer.heartbeat_interval (default 500ms)")
    p.add_argument("--scaling-events", type=int, default=12000,
                   help="events per run of row 10 (scaling; 3 deliveries each)")
    p.add_argument("--scaling-rounds", type=int, default=3,
                   help="rounds of row 10, each running 1, 2 and 4 processes")
    p.add_argument("--no-metrics", action="store_true",
                   help="hookd with health.metrics.enabled: false (what /metrics costs)")
    p.add_argument("--only", help="comma-separated subset: limit,naive,e2e,e2e_x2,latency,floor,"
                   "latency_x2,hooks1000,blackhole,cpu,failover,failover-term,failover-static,"
                   "scaling (prints the "
                   "figures; writes no results)")
    args = p.parse_args(argv)
    if args.quick:
        args.events, args.naive_events, args.latency_seconds, args.repeat = 1500, 400, 6.0, 1
        args.scaling_events, args.scaling_rounds = 4000, 1
    load = machine()
    workdir = Path(tempfile.mkdtemp(prefix="hookd-bench-"))
    bench = Bench(args, workdir)

    def interrupted(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        bench.start()
        if args.only:
            bench.partial(args.only.split(","))
            return 0
        report = bench.run()
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        stop_children()
        bench.broker.stop()
    table = write_results(report, bench, args, load)
    print()
    print(table)
    print(f"results: {RESULTS.relative_to(REPO)}/latest.md, latest.json, bench.png "
          f"(logs of this run: {workdir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
