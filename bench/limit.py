"""The limit: a plain aiohttp client sending ready-made requests at a fixed concurrency.

No Kafka, no templates, no signing, no retries, no logs: the requests (the exact bodies and
headers hookd sends, rendered and signed beforehand) are POSTed by `concurrency` workers
over one keep-alive pool to the receiver. What hookd reaches is compared to this.

    python -m bench.limit REQUESTS.jsonl --concurrency 64    # prints one JSON line
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import aiohttp
import orjson


async def blast(requests: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency,
                                     keepalive_timeout=30)
    statuses: dict[int, int] = {}
    errors = 0
    next_index = 0
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                     skip_auto_headers=("Accept-Encoding",)) as session:

        async def worker() -> None:
            nonlocal next_index, errors
            while next_index < len(requests):
                req = requests[next_index]
                next_index += 1
                try:
                    async with session.request(req["method"], req["url"],
                                               data=req["body"] or None,
                                               headers=req["headers"],
                                               allow_redirects=False) as resp:
                        await resp.read()
                        statuses[resp.status] = statuses.get(resp.status, 0) + 1
                except (aiohttp.ClientError, OSError):
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    sent = sum(statuses.values())
    return {"requests": sent, "errors": errors, "seconds": round(elapsed, 3),
            "per_second": round(sent / elapsed, 1), "statuses": statuses}


def load(path: str) -> list[dict[str, Any]]:
    out = []
    with open(path, "rb") as fh:
        for line in fh:
            req = orjson.loads(line)
            req["body"] = req["body"].encode()
            out.append(req)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.limit")
    p.add_argument("requests", help="JSON lines: {method, url, headers, body}")
    p.add_argument("--concurrency", type=int, default=64)
    args = p.parse_args(argv)
    requests = load(args.requests)
    try:
        import uvloop

        result = uvloop.run(blast(requests, args.concurrency))
    except ImportError:  # pragma: no cover
        result = asyncio.run(blast(requests, args.concurrency))
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_NON_STR_KEYS).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
