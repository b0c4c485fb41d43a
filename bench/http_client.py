"""CPU per request: aiohttp's client against hookd.delivery.client's connections, same
requests, same receiver.

    python -m bench.http_client [--requests 30000] [--concurrency 64] [--callgrind]

Starts `bench.receiver` in its own process on 127.0.0.1, then POSTs the same signed-looking
JSON request with each client at the given concurrency; prints requests/s and CPU µs per
request of this process (user + system), best of three rounds each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
import uvloop

from bench.common import PY, start_receiver
from hookd.delivery.client import Connections, Connector
from hookd.requests.target import target_of

BODY = orjson.dumps({"event": "Joined", "queue": "sales", "call_id": "c" * 20,
                     "fields": list(range(50))})
HEADERS = {"content-type": "application/json", "webhook-id": "msg_0123456789abcdef",
           "webhook-timestamp": "1700000000", "webhook-signature": "v1," + "a" * 44,
           "user-agent": "hookd-bench"}


async def measure(send: Callable[[], Awaitable[None]], requests: int,
                  concurrency: int) -> tuple[float, float]:
    left = requests

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await send()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return requests / wall, cpu / requests * 1e6


def hookd_pool(url: str) -> tuple[Connections, Callable[[], Awaitable[None]]]:
    """One endpoint's connections, as in hookd, and a send of the request through them."""
    async def loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    pool = Connections(Connector(loopback))
    target = target_of(url)  # hookd parses each URL before it reaches the pool

    async def send() -> None:
        response = await pool.request("POST", target, HEADERS, BODY, 5.0, 1024, None)
        assert response.status == 200
    return pool, send


async def run(url: str, requests: int, concurrency: int) -> dict[str, dict[str, float]]:
    pool, hookd_send = hookd_pool(url)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                     skip_auto_headers=("Accept-Encoding",)) as session:

        async def aiohttp_send() -> None:
            async with session.post(url, data=BODY, headers=HEADERS,
                                    allow_redirects=False) as resp:
                await resp.read()
                assert resp.status == 200

        out: dict[str, dict[str, float]] = {}
        for name, send in (("aiohttp", aiohttp_send), ("hookd client", hookd_send)):
            rounds = [await measure(send, requests, concurrency) for _ in range(3)]
            out[name] = {"requests_per_s": round(max(r for r, _ in rounds)),
                         "cpu_us_per_request": round(min(c for _, c in rounds), 2)}
    pool.close()
    return out


async def pool_only(url: str, requests: int, concurrency: int) -> None:
    """hookd's pool alone, 500 requests to warm up then `requests` (for callgrind)."""
    pool, send = hookd_pool(url)
    await measure(send, 500, concurrency)
    await measure(send, requests, concurrency)
    pool.close()


def callgrind(requests: int, concurrency: int) -> dict[str, float]:
    """Instructions per request of hookd's pool: two runs under callgrind, `requests` and
    4 times as many, their difference (start-up and the receiver's set-up cancel out)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt install valgrind)")
    totals = []
    with tempfile.TemporaryDirectory(prefix="hookd-http-") as tmp:
        for n in (requests, 4 * requests):
            out = Path(tmp) / f"callgrind.{n}"
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                            PY, "-m", "bench.http_client", "--pool-only", "--requests",
                            str(n), "--concurrency", str(concurrency)],
                           capture_output=True, text=True, check=True)
            totals.append(next(int(line.split()[1]) for line in out.read_text().splitlines()
                               if line.startswith(("summary:", "totals:"))))
    return {"instructions_per_request": round((totals[1] - totals[0]) / (3 * requests))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.http_client")
    p.add_argument("--requests", type=int, default=30_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    p.add_argument("--callgrind", action="store_true",
                   help="instructions per request of hookd's pool, under valgrind "
                        "(--requests 1000 is plenty)")
    p.add_argument("--pool-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.callgrind:
        print(json.dumps(callgrind(args.requests, args.concurrency)), flush=True)
        return 0
    with tempfile.TemporaryDirectory(prefix="hookd-http-") as tmp:
        receiver, info = start_receiver(Path(tmp))
        try:
            url = f"http://127.0.0.1:{info['port']}/hook"
            if args.pool_only:
                uvloop.run(pool_only(url, args.requests, args.concurrency))
                return 0
            result = uvloop.run(run(url, args.requests, args.concurrency))
        finally:
            receiver.stop()
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        for name, figures in result.items():
            print(f"{name:12} {figures['requests_per_s']:9,.0f} requests/s  "
                  f"{figures['cpu_us_per_request']:6.1f} µs CPU per request (best of 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
