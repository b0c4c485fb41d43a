"""`hookd check --connect` without a broker: endpoints as written, groups and topics as a
cluster may answer, the time bound (on tansu: tests/integration/test_real_cluster.py)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from hookd.cli import main
from hookd.cli.doctor import Doctor, Finding
from hookd.pipeline.runtime import load_config
from tests.unit.conftest import WriteConfig
from tests.unit.delivery.test_proxy import FakeProxy, closed_port, proxy

__all__ = ["proxy"]  # (the fixture)


@dataclass
class Group:
    error_code: int = 0
    state: str = "Stable"
    members: list[Any] = field(default_factory=lambda: [object(), object()])

    def as_answer(self, name: str) -> Any:
        doc = {"groups": [{"error_code": self.error_code, "group": name, "state": self.state,
                           "members": self.members}]}
        return type("Answer", (), {"to_object": lambda _self: doc})()


@dataclass
class Admin:
    topics: dict[str, int]
    groups: dict[str, Group] = field(default_factory=dict)
    brokers: int = 3
    hang: bool = False
    closed: bool = False
    configs: dict[str, dict[str, str]] = field(default_factory=dict)  # topic: its settings

    async def describe_configs(self, resources: list[Any]) -> list[Any]:
        doc = {"resources": [
            {"error_code": 0 if r.name in self.configs else 3, "resource_name": r.name,
             "config_entries": [{"config_names": k, "config_value": v}
                                for k, v in self.configs.get(r.name, {}).items()]}
            for r in resources]}
        return [type("Answer", (), {"to_object": lambda _self: doc})()]

    async def start(self) -> None:
        if self.hang:
            await asyncio.sleep(3600)

    async def describe_cluster(self) -> dict[str, Any]:
        return {"brokers": [{"node_id": n} for n in range(self.brokers)]}

    async def describe_topics(self) -> list[dict[str, Any]]:
        return [{"topic": t, "error_code": 0, "partitions": [{}] * n}
                for t, n in self.topics.items()]

    async def describe_consumer_groups(self, ids: list[str]) -> list[Any]:
        return [self.groups.get(i, Group(state="Empty", members=[])).as_answer(i) for i in ids]

    async def close(self) -> None:
        self.closed = True


async def _lookup(host: str, port: int) -> list[str]:
    return {"crm.example": ["93.184.216.34"], "intranet.example": ["10.1.2.3"]}[host]


def _runtime(write_config: WriteConfig) -> Any:
    tree = write_config("""
        kafka: {topics: [calls], group_id: hookd, dead_letter_topic: dlq}
        delivery: {retry: {schedule: [5s, 5m]}, circuit_breaker: {cooldown: 5m}}
        hooks_dir: null
        hooks:
          - {id: a, event: X, request: {url: "https://crm.example/{{ payload.id }}"}}
          - {id: b, event: X, request: {url: "https://intranet.example:8443/"}}
          - {id: c, event: X, request: {url: "{{ payload.url }}"}}
        """)
    return load_config(tree.main, environ={})


async def _run(runtime: Any, admin: Admin, timeout: float = 5.0) -> tuple[bool, list[str]]:
    seen: list[Finding] = []
    ok = await Doctor(runtime, timeout, admin=admin, lookup=_lookup).run(seen.append)
    return ok, [str(f) for f in seen]


async def test_every_fact_is_one_line(write_config: WriteConfig) -> None:
    admin = Admin({"calls": 6, "dlq": 4}, {"hookd": Group(), "hookd.retry": Group(
        error_code=30)})
    ok, lines = await _run(_runtime(write_config), admin)
    assert not ok and admin.closed
    assert lines == [
        "ok    kafka localhost:9092: connected (PLAINTEXT, client_id hookd), 3 broker(s), "
        "2 topic(s)",
        "ok    source topic calls: 6 partition(s)",
        "ok    consumer group hookd: Stable, 2 member(s)",
        "FAIL  consumer group hookd.retry: GroupAuthorizationFailedError",
        "ok    dead-letter topic dlq: 4 partition(s)",
        "ok    retry topic hookd.retry.5m: does not exist, hookd creates it at start "
        "(4 partition(s), replication 3)",
        "ok    endpoint https://crm.example:443 (hook(s) a): resolves to 93.184.216.34, allowed; "
        "direct",
        "FAIL  endpoint https://intranet.example:8443 (hook(s) b): destination "
        "intranet.example resolves to 10.1.2.3, which is not allowed (delivery.allow_networks)",
        "ok    endpoint of hook(s) c: host decided per delivery (templated URL); direct",
    ]


async def test_a_broker_that_does_not_answer_is_one_line_within_the_timeout(
        write_config: WriteConfig) -> None:
    started = time.monotonic()
    ok, lines = await _run(_runtime(write_config), Admin({}, hang=True), timeout=0.2)
    assert time.monotonic() - started < 1.0
    assert (ok, lines) == (False, [
        "FAIL  kafka localhost:9092: not reachable (PLAINTEXT, timeout 0.2s): no answer"])


async def test_everything_there_is_a_pass(write_config: WriteConfig) -> None:
    runtime = _runtime(write_config)
    runtime = type(runtime)(runtime.config, tuple(h for h in runtime.hooks if h.id != "b"),
                            runtime.index, runtime.secrets, runtime.files)
    ok, lines = await _run(runtime, Admin({"calls": 1}, brokers=1))
    assert ok is False  # replication 3 on one broker: the topics could not be created
    assert next(line for line in lines if line.startswith("FAIL")) == (
        "FAIL  dead-letter topic dlq: does not exist, and cannot be created with replication "
        "3 on 1 broker(s) (kafka.retry_replication)")
    ok, lines = await _run(runtime, Admin({"calls": 1, "dlq": 1, "hookd.retry.5m": 1}))
    assert ok, lines


async def test_the_outcomes_topic_is_checked_as_the_dead_letter_topic(
        write_config: WriteConfig) -> None:
    tree = write_config("""
        kafka: {topics: [calls], dead_letter_topic: dlq, outcomes_topic: log}
        hooks_dir: null
        hooks: []
        """)
    runtime = load_config(tree.main, environ={})
    _, lines = await _run(runtime, Admin({"calls": 1, "dlq": 1, "log": 2}))
    assert "ok    outcomes topic log: 2 partition(s)" in lines
    _, lines = await _run(runtime, Admin({"calls": 1, "dlq": 1}, brokers=1))
    assert ("FAIL  outcomes topic log: does not exist, and cannot be created with replication "
            "3 on 1 broker(s) (kafka.retry_replication)") in lines


def test_check_without_connect_does_not_connect(write_config: WriteConfig,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    tree = write_config("""
        kafka: {bootstrap_servers: ["127.0.0.1:9"]}
        hooks_dir: null
        """)
    assert main(["check", "-c", str(tree.main)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "ok: 0 hook(s) from 1 file(s)"


@pytest.mark.parametrize("value", ["0", "-1", "soon", "0s"])
def test_a_bad_timeout_is_a_usage_error(write_config: WriteConfig, value: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["check", "--connect", "--timeout", value])
    assert stopped.value.code == 2
    assert "--timeout" in capsys.readouterr().err


@pytest.mark.parametrize(("settings", "line"), [
    ({"cleanup.policy": "delete", "retention.ms": "604800000", "retention.bytes": "-1"},
     "ok    retry topic hookd.retry.5m: 1 partition(s), retention 604800000 ms"),
    ({"cleanup.policy": "delete", "retention.ms": "60000", "retention.bytes": "-1"},
     "FAIL  retry topic hookd.retry.5m: could drop a parked delivery before it is due: "
     "retention.ms=60000 is under twice the tier's delay (600000 ms): a parked delivery can "
     "be deleted before it is due, or while a backlog is read; set cleanup.policy=delete and "
     "retention.ms to at least 600000 (kafka-configs.sh --alter)"),
    ({"cleanup.policy": "compact", "retention.ms": "-1", "retention.bytes": "-1"},
     "FAIL  retry topic hookd.retry.5m: could drop a parked delivery before it is due: "
     "cleanup.policy=compact: compaction keeps one record per key, and parked deliveries "
     "share their event's key; set cleanup.policy=delete and retention.ms to at least 600000 "
     "(kafka-configs.sh --alter)"),
])
async def test_an_existing_retry_topic_whose_retention_could_drop_a_delivery_fails(
        write_config: WriteConfig, settings: dict[str, str], line: str) -> None:
    admin = Admin({"calls": 1, "dlq": 1, "hookd.retry.5m": 1},
                  configs={"hookd.retry.5m": settings})
    _ok, lines = await _run(_runtime(write_config), admin)
    assert line in lines, lines


async def test_each_endpoint_says_direct_or_through_which_proxy_and_that_way_is_tested(
        write_config: WriteConfig, proxy: FakeProxy) -> None:
    proxy.answer = b"HTTP/1.1 200 Connection established\r\n\r\n"
    tree = write_config(f"""
        kafka: {{topics: [calls], dead_letter_topic: dlq}}
        delivery:
          proxy: "http://ann:${{env:PROXY_PASSWORD}}@127.0.0.1:{proxy.port}"
          no_proxy: [intranet.example]
        hooks_dir: null
        hooks:
          - {{id: a, event: X, request: {{url: "https://crm.example/"}}}}
          - {{id: b, event: X, request: {{url: "https://crm.example/"}}, proxy: none}}
          - {{id: c, event: X, request: {{url: "https://crm.example:8443/"}},
             proxy: "http://127.0.0.1:{closed_port()}"}}
          - {{id: d, event: X, request: {{url: "{{{{ payload.url }}}}"}}}}
        """)
    runtime = load_config(tree.main, environ={"PROXY_PASSWORD": "pw-123456"})
    ok, lines = await _run(runtime, Admin({"calls": 1, "dlq": 1, "hookd.retry.5m": 1}))
    endpoints = [line for line in lines if "endpoint" in line]
    assert endpoints[:2] == [
        "ok    endpoint https://crm.example:443 (hook(s) b): resolves to 93.184.216.34, "
        "allowed; direct",
        "ok    endpoint https://crm.example:443 (hook(s) a): resolves to 93.184.216.34, "
        f"allowed; through proxy http://***@127.0.0.1:{proxy.port}: CONNECT crm.example:443 "
        "answered 200 Connection established",
    ]
    assert endpoints[2].startswith(
        "FAIL  endpoint https://crm.example:8443 (hook(s) c): resolves to 93.184.216.34, "
        "allowed; through proxy http://127.0.0.1:")
    assert "ConnectionRefusedError" in endpoints[2]
    assert endpoints[3] == (
        "ok    endpoint of hook(s) d: host decided per delivery (templated URL); through "
        f"proxy http://***@127.0.0.1:{proxy.port} unless delivery.no_proxy names the host")
    assert not ok
    assert proxy.heads == [b"CONNECT crm.example:443 HTTP/1.1\r\nHost: crm.example:443\r\n"
                           b"Proxy-Authorization: Basic YW5uOnB3LTEyMzQ1Ng==\r\n\r\n"]
    assert not any("pw-123456" in line or "YW5u" in line for line in lines)


async def test_a_proxy_refusing_the_tunnel_fails_the_check_saying_why(
        write_config: WriteConfig, proxy: FakeProxy) -> None:
    proxy.answer = b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"
    tree = write_config(f"""
        delivery: {{proxy: "http://127.0.0.1:{proxy.port}"}}
        hooks_dir: null
        hooks:
          - {{id: a, event: X, request: {{url: "https://crm.example/"}}}}
        """)
    ok, lines = await _run(load_config(tree.main, environ={}), Admin({"cc.events": 1}))
    assert not ok and lines[-1] == (
        "FAIL  endpoint https://crm.example:443 (hook(s) a): resolves to 93.184.216.34, "
        f"allowed; through proxy http://127.0.0.1:{proxy.port}: proxy "
        f"http://127.0.0.1:{proxy.port} answered CONNECT crm.example:443 with 407 Proxy "
        "Authentication Required: the proxy wants other credentials (the user and password "
        "in the proxy URL)")
