"""Where a delivery's CPU goes, stage by stage: each stage of `bench.cpu`'s deliveries run
alone, in a loop, over the same simulated events and the same three hooks, and timed by
the CPU it takes (`time.process_time`, best of several rounds: the least disturbed).

    python -m bench.stages [--events 2000] [--json] [--callgrind]

With `--callgrind`, instructions per delivery instead (each stage run under valgrind for
one round and for four: the difference, so set-up cancels out): the same on any machine,
whatever else it is doing.

Stages, per delivery (an event's decode and match are shared by its three deliveries, so
a third of each is one delivery's):
- decode: the Kafka record's bytes into an Event (orjson, metadata, CloudEvents check);
- match: the event against the hook index (names, filters);
- render: the hook's templates (url, headers, body) into a Request;
- sign: the Standard Webhooks signature of an attempt (HMAC-SHA256 per key; the
  headers as a dict too for a request without a compiled head);
- log: the canonical JSON line of a delivered attempt, redacted, into the batched writer
  (to /dev/null here);
- encode: the request's bytes on the wire (request line, headers, body): the way an
  attempt makes them, from the hook's head framed at load (hookd.requests.head), with the
  attempt's own headers (webhook-timestamp, -signature); encode_request for the others.

With `--floors`, two more: what signing and the log line cost at the least, the C
libraries alone on the same data (`sign_floor`: `hmac.digest`, OpenSSL's one-shot HMAC,
and base64 per key over the message already built; `log_floor`: `orjson.dumps` of the
line's final dict, built beforehand, and its bytes appended to a list, the batch a write
takes). `--stages sign,log` counts only those under callgrind.
What `bench.cpu` measures beyond their sum is the rest: the send and the answer (system
calls, the event loop, the HTTP parser) and the bookkeeping around them (tasks, the
ordering per key, slots, circuits, counters, stats). `bench.run` puts the two side by
side (its "where the CPU goes" table).
"""

from __future__ import annotations

import argparse
import binascii
import hmac
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import structlog
import uvloop

from bench.common import PY, bench_hooks, write_config
from bench.cpu import record
from hookd.delivery.wire import encode_request
from hookd.dev.sim import Simulator
from hookd.events.decode import decode_event, make_meta
from hookd.pipeline.runtime import load_config
from hookd.requests.head import attempt_bytes
from hookd.requests.render import Request
from hookd.requests.target import target_of
from hookd.telemetry.lines import Lines
from hookd.telemetry.logs import REDACTOR, configure_logging
from hookd.telemetry.redact import Redactor

ROUNDS = 5


def _best(fn: Callable[[], int], rounds: int = ROUNDS) -> float:
    """CPU µs per unit of `fn`'s work (it returns how many units it did), best of rounds."""
    best = float("inf")
    for _ in range(rounds):
        cpu = time.process_time()
        units = fn()
        best = min(best, (time.process_time() - cpu) / units * 1e6)
    return best


def measure(events: int, workdir: Path, only: str | None = None,
            rounds: int = ROUNDS, floors: bool = False) -> dict[str, float]:
    base = "http://127.0.0.1:9"  # nothing is sent
    runtime = load_config(write_config(workdir, bootstrap="127.0.0.1:9", topic="cc.events",
                                       group="stages", hooks=bench_hooks(base),
                                       health_port=9))
    name_field = runtime.config.events.name_field
    records = [record(i, e.key.encode(), e.encoded(sent_at=time.time()))
               for i, e in enumerate(Simulator(seed=1).take(events))]

    def decode_all() -> list[Any]:
        return [decode_event(r.value, make_meta(r.topic, r.partition, r.offset, r.key,
                                                r.timestamp, r.headers), name_field)
                for r in records]

    decoded = decode_all()
    matched = [(e, runtime.index.match(e.name, e.payload)) for e in decoded]
    per_event = sum(len(h) for _, h in matched) / len(matched)  # deliveries per event
    pairs = [(e, h) for e, hooks in matched for h in hooks]
    requests: list[tuple[Request, Any]] = [(h.render(e), h) for e, h in pairs]

    def decode() -> int:
        decode_all()
        return len(records)

    def match() -> int:
        for e in decoded:
            runtime.index.match(e.name, e.payload)
        return len(decoded)

    def render() -> int:
        for e, h in pairs:
            h.render(e)
        return len(pairs)

    def sign() -> int:
        now = int(time.time())
        for r, h in requests:
            if r.head is None:
                r.signed_headers(h.signer, now)
            elif h.signer is not None:
                h.signer.signature(r.webhook_id, now, r.body)
        return len(requests)

    def encode() -> int:  # as hookd.delivery.sending does it, straight to the endpoint
        now = int(time.time())
        for r, h in requests:
            head, signer = r.head, h.signer
            if head is not None:
                data = attempt_bytes(head, r.text, head.target or target_of(r.url), now, None
                                     if signer is None else
                                     signer.signature(r.webhook_id, now, r.body), None, r.body)
                if data is not None:
                    continue
            encode_request(r.method, target_of(r.url), r.signed_headers(signer, now), r.body)
        return len(requests)

    def log() -> int:
        for (e, h), (r, _) in zip(pairs, requests, strict=True):
            m = e.meta  # the line as Attempts.record writes it, from the event and request
            lines.delivered(h.id, r.webhook_id, r.url, m.topic, m.partition, m.offset,
                            e.name, 200, 1, 1.2, time.time())
        return len(pairs)

    signed = [(h.signer.keys, f"{r.webhook_id}.{int(time.time())}.".encode() + r.body)
              for r, h in requests if h.signer is not None]

    def sign_floor() -> int:
        for keys, message in signed:
            for key in keys:
                binascii.b2a_base64(hmac.digest(key, message, "sha256"), newline=False)
        return len(requests)

    finals: list[dict[str, Any]] = []  # each line's dict as the log writes it
    batch: list[bytes] = []

    def log_floor() -> int:
        for line in finals:
            batch.append(orjson.dumps(line))
        batch.clear()
        return len(finals)

    stages = {"decode": decode, "match": match, "render": render, "sign": sign,
              "encode": encode, "log": log, "sign_floor": sign_floor, "log_floor": log_floor}
    with open("/dev/null", "w") as null:
        sys.stdout = null  # the JSON lines go to stdout, as the daemon's do
        try:
            configure_logging("info", "json")
            REDACTOR.current = Redactor(runtime.secrets)
            lines = Lines(structlog.get_logger("hookd.dispatch").bind())
            floors = floors or only in FLOORS
            if floors and lines.json is not None:  # the floor's dicts: what `log` wrote
                out = lines.json.out
                written: list[bytes] = []
                out.msg = written.append  # type: ignore[method-assign,assignment]
                try:
                    log()
                finally:
                    del out.msg
                finals.extend(orjson.loads(line) for line in written)
            if only is not None:  # one stage, `rounds` times (for callgrind): units done
                return {"units": sum(stages[only]() for _ in range(rounds)),
                        "per_event": per_event}
            us = {name: _best(fn, rounds) for name, fn in stages.items()
                  if floors or name in STAGES}
        finally:
            sys.stdout = sys.__stdout__
    us["decode"] /= per_event  # a delivery's share of its event's
    us["match"] /= per_event
    us["encode"] -= us["sign"]  # (encode signs first, as an attempt does)
    return us


STAGES = ("decode", "match", "render", "sign", "encode", "log")
FLOORS = ("sign_floor", "log_floor")


def callgrind(events: int, stages: tuple[str, ...] = STAGES) -> dict[str, float]:
    """Instructions per delivery of each stage: each run under callgrind once for 1 round
    and once for 4, the difference divided by the extra units (set-up cancels out)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt install valgrind)")
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hookd-stages-") as tmp:
        for stage in stages:
            totals, units, per_event = [], [], 1.0
            for rounds in (1, 4):
                file = Path(tmp) / f"callgrind.{stage}.{rounds}"
                argv = [PY, "-m", "bench.stages", "--events", str(events), "--only", stage,
                        "--rounds", str(rounds), "--json"]
                proc = subprocess.run(["valgrind", "--tool=callgrind",
                                       f"--callgrind-out-file={file}", *argv],
                                      capture_output=True, text=True, check=True)
                doc = json.loads(proc.stdout.strip().splitlines()[-1])
                units.append(doc["units"])
                per_event = doc["per_event"]
                totals.append(next(int(line.split()[1]) for line in
                                   file.read_text().splitlines()
                                   if line.startswith(("summary:", "totals:"))))
            per_unit = (totals[1] - totals[0]) / (units[1] - units[0])
            out[stage] = per_unit / per_event if stage in ("decode", "match") else per_unit
        if "encode" in out and "sign" in out:
            out["encode"] -= out["sign"]  # (encode signs first, as an attempt does)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.stages",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    p.add_argument("--callgrind", action="store_true",
                   help="instructions per delivery of each stage, counted under valgrind")
    p.add_argument("--floors", action="store_true",
                   help="also sign_floor and log_floor: the C libraries alone, same data")
    p.add_argument("--stages", help="with --callgrind: only these (comma-separated)")
    p.add_argument("--only", choices=STAGES + FLOORS, help=argparse.SUPPRESS)  # (callgrind's runs)
    p.add_argument("--rounds", type=int, default=ROUNDS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unit = "instructions" if args.callgrind else "µs"
    result: dict[str, float]
    if args.callgrind:
        chosen = tuple(args.stages.split(",")) if args.stages else \
            STAGES + (FLOORS if args.floors else ())
        if unknown := set(chosen) - set(STAGES + FLOORS):
            p.error(f"unknown stages: {', '.join(sorted(unknown))}")
        result = {k: round(v) for k, v in callgrind(args.events, chosen).items()}
    else:
        async def in_loop(workdir: Path) -> dict[str, float]:  # as the daemon runs them:
            # the log's writer gathers lines per loop iteration only in a running loop
            return measure(args.events, workdir, args.only, args.rounds, args.floors)

        with tempfile.TemporaryDirectory(prefix="hookd-stages-") as tmp:
            result = {k: round(v, 2) for k, v in uvloop.run(in_loop(Path(tmp))).items()}
    print(json.dumps(result) if args.json else
          "  ".join(f"{k}: {v} {unit}" for k, v in result.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
