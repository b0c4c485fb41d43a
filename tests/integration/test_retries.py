"""Durable retries, isolation, replay, OAuth2 and mTLS — real broker, real servers."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import orjson
import trustme
import yaml
from aiohttp import web

from hookd.cli import main as cli_main
from hookd.kafka.parking import read_parked
from hookd.requests.signing import webhook_id
from tests.integration.harness import (
    committed,
    hook,
    new_topic,
    produce,
    read_topic,
    running,
    unique,
    until,
    wait_ready,
    write_config,
)
from tests.integration.receiver import Receiver, serve

PARTS = 2
# attempt 1, attempt 2 after 50 ms in memory, attempt 3 after ~1 s from a retry topic
DELIVERY = {"allow_networks": ["127.0.0.0/8"], "timeout": "2s",
            "retry": {"schedule": ["50ms", "1s"], "inline_max": "200ms", "jitter": 0.0}}


def _cfg(tmp_path: Path, broker: Any, topic: str, hooks: list[dict[str, Any]],
         **extra: Any) -> Path:
    """A test config with its own retry topics (tiers are shared by prefix otherwise)."""
    extra.setdefault("delivery", DELIVERY)
    path = write_config(tmp_path, broker.bootstrap, topic, hooks, **extra)
    data = yaml.safe_load(path.read_text())
    data["kafka"]["retry_topic_prefix"] = unique("retry")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


async def test_down_endpoint_is_retried_from_a_retry_topic_while_others_flow(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    topic, group = await new_topic(broker.bootstrap, PARTS, "rt"), unique("g")
    receiver.plan["/down"].extend([503, 503])  # down for the two in-memory attempts
    cfg = _cfg(tmp_path, broker, topic, [
        hook("down", "Answered", receiver.url("/down"), filter={"id": "e0"}),
        hook("ok", "Answered", receiver.url("/ok"))], group=group)
    events = [(f"k{i}".encode(), {"event": "Answered", "id": f"e{i}"}) for i in range(10)]
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        await produce(broker.bootstrap, topic, events)
        await receiver.wait_for(10, "/ok")  # the healthy hook is not held up
        await until(lambda: daemon.dispatcher.counters.parked >= 1)  # type: ignore[union-attr]
        # the parked delivery no longer holds its source offset
        await until(lambda: daemon.source.tracker.in_flight() == 0  # type: ignore[union-attr]
                    and daemon.source.tracker.committable() == {})  # type: ignore[union-attr]
        offsets = await committed(broker.bootstrap, group, topic, PARTS)
        assert sum(max(o, 0) for o in offsets.values()) == 10
        assert len(receiver.at("/down")) == 2  # attempt 3 waits in the retry topic
        await receiver.wait_for(3, "/down")
    ids = {r.headers["webhook-id"] for r in receiver.at("/down")}
    assert ids == {webhook_id("e0", "down")}  # attempts 1, 2 and 3 share the id


async def test_parked_delivery_survives_a_restart_and_uses_the_url_fixed_by_reload(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    topic = await new_topic(broker.bootstrap, PARTS, "rt")
    delivery = {**DELIVERY, "retry": {"schedule": ["50ms", "3s"], "inline_max": "200ms",
                                      "jitter": 0.0}}
    receiver.plan["/broken"].extend([503] * 10)
    cfg = _cfg(tmp_path, broker, topic, [hook("crm", "Answered", receiver.url("/broken"))],
               delivery=delivery, group=unique("g"))
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        await produce(broker.bootstrap, topic, [(b"k", {"event": "Answered", "id": "p1"})])
        await until(lambda: daemon.dispatcher.counters.parked == 1)  # type: ignore[union-attr]
    # hookd is down while the delivery is parked; meanwhile ops fix the URL
    text = cfg.read_text().replace(receiver.url("/broken"), receiver.url("/fixed"))
    cfg.write_text(text)
    async with running(cfg) as daemon:
        await receiver.wait_for(1, "/fixed", timeout=30)
    fixed = receiver.at("/fixed")[0]
    assert fixed.headers["webhook-id"] == webhook_id("p1", "crm")
    assert len(receiver.at("/broken")) == 2


async def test_retrying_counts_records_parked_behind_one_not_due(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    """`retrying` counts the records waiting in the retry topics, also those parked after
    the retry consumer paused their partition at a record not due yet (a paused partition
    is not fetched, so its high watermark stays as it was)."""
    topic = await new_topic(broker.bootstrap, PARTS, "rt")
    receiver.plan["/down"].extend([503] * 100)
    delivery = {**DELIVERY, "circuit_breaker": {"failures": 1000},  # each parked alone
                "retry": {"schedule": ["50ms", "5m"], "inline_max": "200ms", "jitter": 0.0}}
    cfg = _cfg(tmp_path, broker, topic, [hook("down", "Answered", receiver.url("/down"))],
               delivery=delivery, group=unique("g"))

    def retrying() -> int:
        return int(daemon.state()[1]["counters"]["retrying"])

    async with running(cfg) as daemon:
        await wait_ready(daemon)
        await produce(broker.bootstrap, topic, [(b"k", {"event": "Answered", "id": "w0"})])
        held = daemon.retries
        assert held is not None
        await until(lambda: bool(held.consumer.paused()), 30)  # taken, not due: held there
        assert retrying() == 1
        await produce(broker.bootstrap, topic,  # one key: parked into the same partition
                      [(b"k", {"event": "Answered", "id": f"w{i}"}) for i in range(1, 6)])
        await until(lambda: daemon.dispatcher.counters.parked == 6)  # type: ignore[union-attr]
        await until(lambda: retrying() == 6, 10)
        assert len(receiver.at("/down")) == 12  # two attempts each, none since


async def test_exhausted_retries_are_dead_lettered_with_the_attempt_count(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    topic, dlq = await new_topic(broker.bootstrap, PARTS, "rt"), unique("dlq")
    receiver.plan["/always"].extend([500] * 10)
    cfg = _cfg(tmp_path, broker, topic, [hook("x", "Answered", receiver.url("/always"))],
               dlq=dlq, group=unique("g"))
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        await produce(broker.bootstrap, topic, [(b"k", {"event": "Answered", "id": "x1"})])
        [letter] = await read_topic(broker.bootstrap, dlq, 1, timeout=30)
    rec = orjson.loads(letter.value)
    assert rec["attempts"] == 3 and len(receiver.at("/always")) == 3
    assert rec["error"] == {"kind": "http_status", "status": 500, "message": "HTTP 500: no"}
    assert rec["first_attempt_at"] < rec["last_attempt_at"]
    assert rec["source"]["topic"] == topic  # the original event, not the retry topic


async def test_black_holed_endpoint_opens_its_circuit_and_healthy_hooks_flow(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def swallow(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        accepted.append(w)  # accept, read nothing, answer nothing

    hole = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = hole.sockets[0].getsockname()[1]
    topic = await new_topic(broker.bootstrap, PARTS, "rt")
    delivery = {**DELIVERY, "timeout": "500ms", "per_endpoint_in_flight": 4,
                "circuit_breaker": {"failures": 3, "cooldown": "30s"},
                "retry": {"schedule": ["5m"], "inline_max": "1s"}}
    cfg = _cfg(tmp_path, broker, topic, [
        hook("hole", "Answered", f"http://127.0.0.1:{port}/void"),
        hook("ok", "Answered", receiver.url("/ok"))], delivery=delivery, group=unique("g"))
    n = 300
    try:
        async with running(cfg) as daemon:
            await wait_ready(daemon)
            await produce(broker.bootstrap, topic,
                          [(f"k{i % 50}".encode(), {"event": "Answered", "id": f"b{i}"})
                           for i in range(n)])
            await receiver.wait_for(n, "/ok", timeout=60)
            await until(lambda: daemon.dispatcher.counters.parked == n)  # type: ignore[union-attr]
            _, state = daemon.state()
    finally:
        hole.close()
        for w in accepted:
            w.close()
    assert {"endpoint": f"http://127.0.0.1:{port}", "scope": "host"}.items() <= next(
        iter(state["open_circuits"])).items()
    # not hammered: the circuit opened after a handful of timed-out connections
    assert len(accepted) <= 3 + 4


async def test_deliveries_parked_while_a_circuit_is_open_come_back_as_groups(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    """Deliveries parked unsent go to the retry topic as one record per hook (format 2),
    and come back from it, every one delivered."""
    topic = await new_topic(broker.bootstrap, PARTS, "rt")
    receiver.plan["/flaky"].extend([503] * 3)  # three failures in a row open the circuit
    delivery = {**DELIVERY, "per_endpoint_in_flight": 1,
                "circuit_breaker": {"failures": 3, "cooldown": "1s"},
                "retry": {"schedule": ["1s"], "inline_max": "200ms", "jitter": 0.0}}
    cfg = _cfg(tmp_path, broker, topic, [hook("flaky", "Answered", receiver.url("/flaky"))],
               delivery=delivery, group=unique("g"))
    retry_topic = yaml.safe_load(cfg.read_text())["kafka"]["retry_topic_prefix"] + ".1s"
    n = 40
    ids = {webhook_id(f"c{i}", "flaky") for i in range(n)}
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        await produce(broker.bootstrap, topic,
                      [(f"k{i}".encode(), {"event": "Answered", "id": f"c{i}"})
                       for i in range(n)])
        # the receiver answered 503 to the first three requests and 200 to all the others
        await until(lambda: {r.headers["webhook-id"] for r in receiver.at("/flaky")[3:]}
                    >= ids, 60)
    records = await read_topic(broker.bootstrap, retry_topic, 1, settle=1.0)
    groups = [r for r in records if dict(r.headers).get("hookd-deliveries", b"1") != b"1"]
    assert groups, "nothing was parked unsent as a group"
    for record in groups:
        parked = read_parked(record.value)
        assert len(parked) == int(dict(record.headers)["hookd-deliveries"]) > 1
        assert record.key == b"flaky" and {p.hook for p in parked} == {"flaky"}
        assert all(webhook_id(p.event.id, p.hook) in ids for p in parked)


async def test_replay_delivers_dead_letters_once(
        broker: Any, receiver: Receiver, tmp_path: Path, capsys: Any) -> None:
    topic, dlq = await new_topic(broker.bootstrap, PARTS, "rt"), unique("dlq")
    receiver.plan["/r"].extend([404, 404])
    cfg = _cfg(tmp_path, broker, topic, [hook("r", "Answered", receiver.url("/r"))],
               dlq=dlq, group=unique("g"))
    await produce(broker.bootstrap, topic, [(b"a", {"event": "Answered", "id": "r1"}),
                                            (b"b", {"event": "Answered", "id": "r2"})])
    async with running(cfg) as daemon:
        await read_topic(broker.bootstrap, dlq, 2)  # both failed with 404
        assert await asyncio.to_thread(cli_main, ["replay", "-c", str(cfg), "--dry-run"]) == 0
        assert "would replay 2 dead letter(s)" in capsys.readouterr().out
        assert await asyncio.to_thread(cli_main, ["replay", "-c", str(cfg)]) == 0
        assert "replayed 2 dead letter(s)" in capsys.readouterr().out
        await receiver.wait_for(4, "/r", timeout=40)  # the receiver was fixed: 200 now
        assert await asyncio.to_thread(cli_main, ["replay", "-c", str(cfg)]) == 0
        assert "replayed 0 dead letter(s)" in capsys.readouterr().out
        await asyncio.sleep(1.5)
        assert daemon.dispatcher.counters.delivered == 2  # type: ignore[union-attr]
    ids = [r.headers["webhook-id"] for r in receiver.at("/r")]
    assert sorted(ids) == sorted([webhook_id("r1", "r"), webhook_id("r2", "r")] * 2)


async def test_a_replay_of_one_hook_leaves_the_other_hooks_letters_for_later(
        broker: Any, receiver: Receiver, tmp_path: Path, capsys: Any) -> None:
    topic, dlq = await new_topic(broker.bootstrap, PARTS, "rt"), unique("dlq")
    receiver.plan["/r"].append(404)
    receiver.plan["/s"].append(404)
    cfg = _cfg(tmp_path, broker, topic, [hook("r", "Answered", receiver.url("/r")),
                                         hook("s", "Answered", receiver.url("/s"))],
               dlq=dlq, group=unique("g"))
    await produce(broker.bootstrap, topic, [(b"a", {"event": "Answered", "id": "f1"})])
    async with running(cfg):
        await read_topic(broker.bootstrap, dlq, 2)  # r and s both failed with 404
        assert await asyncio.to_thread(cli_main, ["replay", "-c", str(cfg), "--hook", "r"]) == 0
        assert "replayed 1 dead letter(s)" in capsys.readouterr().out
        assert await asyncio.to_thread(cli_main, ["replay", "-c", str(cfg), "--hook", "s"]) == 0
        assert "replayed 1 dead letter(s)" in capsys.readouterr().out  # s's was not skipped
        await receiver.wait_for(2, "/s", timeout=40)
        await receiver.wait_for(2, "/r", timeout=40)


async def test_oauth2_token_is_fetched_cached_and_refreshed_on_401(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    issued: list[dict[str, str]] = []

    async def token(request: web.Request) -> web.Response:
        form = dict(await request.post())
        issued.append({**form, "authorization": request.headers.get("Authorization", "")})
        return web.json_response({"access_token": f"tok-{len(issued)}", "expires_in": 3600,
                                  "token_type": "Bearer"})

    app = web.Application()
    app.router.add_post("/oauth/token", token)
    runner, port = await serve(app)
    receiver.plan["/api"].extend([200, 200, 401, 200])
    topic = await new_topic(broker.bootstrap, PARTS, "rt")
    cfg = _cfg(tmp_path, broker, topic, [hook(
        "o", "Answered", receiver.url("/api"),
        auth={"type": "oauth2", "token_url": f"http://127.0.0.1:{port}/oauth/token",
              "client_id": "hookd", "client_secret": "s3cret", "scope": "events"})],
        group=unique("g"))
    try:
        async with running(cfg) as daemon:
            await wait_ready(daemon)
            for i in range(3):  # one at a time, so the 401 hits the third
                await produce(broker.bootstrap, topic, [(b"k", {"event": "Answered",
                                                                 "id": f"o{i}"})])
                await until(lambda i=i: daemon.dispatcher.counters.delivered == i + 1)  # type: ignore[union-attr,misc]
    finally:
        await runner.cleanup()
    auths = [r.headers["authorization"] for r in receiver.at("/api")]
    assert auths == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
    assert len(issued) == 2
    assert issued[0]["grant_type"] == "client_credentials" and issued[0]["scope"] == "events"
    assert issued[0]["authorization"].startswith("Basic ")


async def test_mtls_with_a_private_ca(broker: Any, tmp_path: Path) -> None:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    client_cert = ca.issue_cert("hookd-client")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(server_ctx)
    ca.configure_trust(server_ctx)
    server_ctx.verify_mode = ssl.CERT_REQUIRED  # no client certificate, no handshake
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert")  # type: ignore[union-attr]
        seen.append(",".join(v for _, v in peer.get("subjectAltName", ())) if peer else "")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/secure", handle)
    runner, port = await serve(app, server_ctx)
    ca_file, cert_file = tmp_path / "ca.pem", tmp_path / "client.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    client_cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    topic = await new_topic(broker.bootstrap, PARTS, "rt")
    cfg = _cfg(tmp_path, broker, topic, [
        hook("mtls", "Answered", f"https://127.0.0.1:{port}/secure",
             tls={"ca_file": str(ca_file), "cert_file": str(cert_file)}),
        hook("no-cert", "Answered", f"https://127.0.0.1:{port}/secure",
             tls={"ca_file": str(ca_file)})], dlq=unique("dlq"), group=unique("g"))
    try:
        async with running(cfg) as daemon:
            await wait_ready(daemon)
            await produce(broker.bootstrap, topic, [(b"k", {"event": "Answered", "id": "t1"})])
            await until(lambda: daemon.dispatcher.counters.delivered == 1  # type: ignore[union-attr]
                        and daemon.dispatcher.counters.parked >= 1)  # type: ignore[union-attr]
    finally:
        await runner.cleanup()
    assert seen == ["hookd-client"]  # only the hook with a client certificate got through


async def test_410_disables_the_hook_until_the_next_reload(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    topic = await new_topic(broker.bootstrap, PARTS, "rt")
    receiver.plan["/gone"].extend([410])
    cfg = _cfg(tmp_path, broker, topic, [hook("g", "Answered", receiver.url("/gone")),
                                         hook("other", "Answered", receiver.url("/other"))],
               group=unique("g"))
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        await produce(broker.bootstrap, topic, [(b"k", {"event": "Answered", "id": "1"})])
        await receiver.wait_for(1, "/gone")
        await until(lambda: "g" in daemon.state()[1]["disabled_hooks"])
        await produce(broker.bootstrap, topic, [(b"k", {"event": "Answered", "id": "2"})])
        await receiver.wait_for(2, "/other")
        assert len(receiver.at("/gone")) == 1  # disabled: event 2 was not sent to it
        daemon.request_reload()
        await until(lambda: daemon.state()[1]["disabled_hooks"] == {})
        await produce(broker.bootstrap, topic, [(b"k", {"event": "Answered", "id": "3"})])
        await receiver.wait_for(2, "/gone")


async def test_rate_limit_spaces_deliveries_of_one_hook(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    topic = await new_topic(broker.bootstrap, PARTS, "rt")
    cfg = _cfg(tmp_path, broker, topic, [
        hook("slow", "Answered", receiver.url("/slow"), rate_limit="10/s"),
        hook("free", "Answered", receiver.url("/free"))], group=unique("g"))
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        await produce(broker.bootstrap, topic, [(f"k{i}".encode(), {"event": "Answered",
                                                                     "id": f"{i}"})
                                                for i in range(25)])
        await receiver.wait_for(25, "/slow", timeout=30)
    slow = sorted(r.at for r in receiver.at("/slow"))
    free = sorted(r.at for r in receiver.at("/free"))
    # a bucket of 10, then 10 per second: the last 15 need at least 1.5 s (lower bound only)
    assert slow[-1] - slow[0] >= 1.2
    assert free[-1] - free[0] < slow[-1] - slow[0]  # the limit is per hook
