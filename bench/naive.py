"""The peer: the loop a user writes by hand instead of running hookd.

Consume a record, render each of the same three requests with Jinja2 and `json`, sign with
`hmac`, POST with aiohttp, commit — one record at a time, one request at a time. It sends
the same requests hookd sends for the benchmark's three hooks (see `bench.common`).

    python -m bench.naive --bootstrap 127.0.0.1:PORT --topic T --group G --base URL --count N
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import re
import sys
import time

import aiohttp
import jinja2
from aiokafka import AIOKafkaConsumer

from bench.common import FETCH_WAIT_MS, WHSEC_A, WHSEC_B


def _key(secret: str) -> bytes:
    raw = secret.removeprefix("whsec_")
    return base64.b64decode(raw + "=" * (-len(raw) % 4))


def _msg_id(event_id: str, hook: str) -> str:
    return "msg_" + hashlib.sha256(f"{event_id}\x00{hook}".encode()).hexdigest()[:32]


def _legacy(event: dict[str, object]) -> bytes:
    return re.sub(r"\$\{(\w+)\}", lambda m: str(event.get(m.group(1), "")),
                  '{"event": "${event}", "id": "${id}", "time": "${time}"}').encode()


def _sign(keys: list[bytes], msg_id: str, ts: int, body: bytes) -> str:
    signed = f"{msg_id}.{ts}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(k, signed, hashlib.sha256).digest())
                    .decode() for k in keys)


async def run(args: argparse.Namespace) -> int:
    env = jinja2.Environment()
    env.filters["tojson"] = json.dumps
    crm_url = env.from_string(args.base + "/crm/{{ event|lower|replace(':', '-') }}")
    crm_body = env.from_string(
        '{"event": {{ event|tojson }}, "id": {{ id|tojson }}, "time": {{ time|tojson }}, '
        '"call": {{ key|tojson }}, "domain": {{ domain|tojson }}, "offset": {{ offset }}}')
    key_a, key_b = _key(WHSEC_A), _key(WHSEC_B)
    basic = "Basic " + base64.b64encode(b"hookd:legacy-pass-0123").decode()
    consumer = AIOKafkaConsumer(args.topic, bootstrap_servers=args.bootstrap,
                                group_id=args.group, enable_auto_commit=False,
                                auto_offset_reset="earliest", session_timeout_ms=6000,
                                heartbeat_interval_ms=500, fetch_max_wait_ms=FETCH_WAIT_MS)
    await consumer.start()
    done = 0
    deadline = time.monotonic() + args.max_seconds
    try:
        async with aiohttp.ClientSession() as session:
            async for msg in consumer:
                event = json.loads(msg.value)
                key = msg.key.decode() if msg.key else None
                ts = int(time.time())
                requests = []
                msg_id = _msg_id(event["id"], "crm")
                body = crm_body.render(**event, key=key, offset=msg.offset).encode()
                requests.append((crm_url.render(**event), body, {
                    "content-type": "application/json", "authorization": "Bearer crm-token",
                    "webhook-id": msg_id, "webhook-timestamp": str(ts),
                    "webhook-signature": _sign([key_a], msg_id, ts, body)}))
                msg_id = _msg_id(event["id"], "analytics")
                body = json.dumps(event).encode()
                requests.append((args.base + "/analytics", body, {
                    "content-type": "application/json", "x-api-key": "analytics-key",
                    "webhook-id": msg_id, "webhook-timestamp": str(ts),
                    "webhook-signature": _sign([key_b, key_a], msg_id, ts, body)}))
                body = _legacy(event)
                requests.append((args.base + "/legacy", body, {
                    "content-type": "application/json", "authorization": basic}))
                for url, body, headers in requests:
                    headers["x-sent-at"] = str(event.get("sent_at", ""))
                    async with session.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                await consumer.commit()
                done += 1
                if done >= args.count or time.monotonic() > deadline:
                    break
    finally:
        await consumer.stop()
    print(json.dumps({"records": done}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.naive")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--group", default="naive")
    p.add_argument("--base", required=True, help="the receiver, http://127.0.0.1:PORT")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--max-seconds", type=float, default=300.0)
    args = p.parse_args(argv)
    assert args.base.startswith("http://127.0.0.1:")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
