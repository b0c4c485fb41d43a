"""SASL and TLS end to end, on Apache Kafka: `hookd run` over SASL_SSL with SCRAM-SHA-512
(a user added when the storage is formatted), SASL_SSL with PLAIN (users in the listener's
JAAS config), and SSL with a client certificate the broker requires (a CA made by
trustme). Each time every client hookd opens is used: the admin client creates hookd's
topics, the source consumer reads an event, the producer parks a failed delivery in a
retry topic and writes a dead letter, and the retry consumer reads the parked one back
for its second attempt. A wrong password and a broker certificate the configured CA did
not sign are each one line naming the cause, from `hookd check --connect` and from
`hookd run`.

One secured single-node cluster serves the whole module; the test's own records go in and
come out over its PLAINTEXT listener.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme
import yaml
from cryptography.hazmat.primitives import serialization

from hookd.dev.kafka import KafkaCluster
from hookd.kafka.parking import read_parked
from tests.integration.harness import (
    DaemonProcess,
    free_port,
    get_json,
    hook,
    new_topic,
    produce,
    read_topic,
    unique,
    wait_process_ready,
    write_config,
)
from tests.integration.receiver import Receiver

WORKTREE = Path(__file__).resolve().parents[2]
SCRAM_USER, SCRAM_PASSWORD = "alice", "alice-secret"
# a SCRAM user denied IDEMPOTENT_WRITE on the cluster and WRITE on every topic (the others
# may do everything): Kafka 3.0+ grants an idempotent producer to a user that may WRITE
# to any topic, IDEMPOTENT_WRITE or not (KIP-679; on 4.1.1, denied IDEMPOTENT_WRITE alone,
# it still got a producer id)
NO_IDEMPOTENCE_USER, NO_IDEMPOTENCE_PASSWORD = "carol", "carol-secret"
PLAIN_USER, PLAIN_PASSWORD = "bob", "bob-secret"
# attempt 1 fails: parked at once in the 1 s tier (longer than inline_max), attempt 2
# comes from the retry topic; a 400 is final: a dead letter
DELIVERY = {"allow_networks": ["127.0.0.0/8"], "timeout": "5s",
            "retry": {"schedule": ["1s"], "inline_max": "200ms", "jitter": 0.0}}
EVIDENCE = Path(os.environ.get("HOOKD_SCRAM_EVIDENCE", "/tmp/scram-evidence.txt"))


@dataclass
class Secured:
    cluster: KafkaCluster
    folder: Path  # the PEM files

    @property
    def plaintext(self) -> str:
        return self.cluster.bootstrap

    def address(self, listener: str) -> str:
        return self.cluster.address(listener)

    def pem(self, name: str) -> str:
        return str(self.folder / name)


def _pkcs8(key_pem: bytes) -> bytes:
    """Kafka's PEM keystore reads PKCS#8 keys only; trustme writes EC keys traditionally."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    folder = tmp_path_factory.mktemp("pki")
    ca, stranger = trustme.CA(), trustme.CA()
    broker_cert = ca.issue_cert("127.0.0.1")
    client_cert = ca.issue_cert("hookd.client.test")
    (folder / "broker.pem").write_bytes(
        _pkcs8(broker_cert.private_key_pem.bytes())
        + b"".join(blob.bytes() for blob in broker_cert.cert_chain_pems))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    stranger.cert_pem.write_to_path(str(folder / "stranger-ca.pem"))  # signed nothing here
    client_cert.cert_chain_pems[0].write_to_path(str(folder / "client.crt"))
    client_cert.private_key_pem.write_to_path(str(folder / "client.key"))
    settings = {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(folder / "broker.pem"),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(folder / "ca.pem"),
        "listener.name.ssl.ssl.client.auth": "required",
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "listener.name.sasl_ssl.plain.sasl.jaas.config":
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{PLAIN_USER}="{PLAIN_PASSWORD}";',
        # ACLs: none on topics and groups (everyone may), and on the cluster those that
        # _deny_idempotence() adds; the brokers and controller talk as ANONYMOUS
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "true",
        "super.users": "User:ANONYMOUS",
    }
    cluster = KafkaCluster(
        tmp_path_factory.mktemp("kafka"), listeners={"SASL_SSL": "SASL_SSL", "SSL": "SSL"},
        settings=settings,
        format_args=[
            "--add-scram", f"SCRAM-SHA-512=[name={SCRAM_USER},password={SCRAM_PASSWORD}]",
            "--add-scram", f"SCRAM-SHA-512=[name={NO_IDEMPOTENCE_USER},"
                           f"password={NO_IDEMPOTENCE_PASSWORD}]"])
    cluster.start()
    _deny_idempotence(cluster.bootstrap)
    EVIDENCE.unlink(missing_ok=True)  # this run's evidence only
    try:
        yield Secured(cluster, folder)
    finally:
        cluster.stop()


def _deny_idempotence(bootstrap: str) -> None:
    """On the cluster and on every topic: everyone may do everything, but
    NO_IDEMPOTENCE_USER may neither IDEMPOTENT_WRITE nor WRITE (a deny wins). Through
    librdkafka's admin client: aiokafka's has no CreateAcls."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    def acl(kind: Any, name: str, principal: str, operation: Any, permission: Any) -> Any:
        return AclBinding(kind, name, ResourcePatternType.LITERAL, principal, "*",
                          operation, permission)

    user = f"User:{NO_IDEMPOTENCE_USER}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    done = admin.create_acls([
        acl(ResourceType.BROKER, "kafka-cluster", "User:*", AclOperation.ALL,
            AclPermissionType.ALLOW),
        acl(ResourceType.BROKER, "kafka-cluster", user, AclOperation.IDEMPOTENT_WRITE,
            AclPermissionType.DENY),
        acl(ResourceType.TOPIC, "*", "User:*", AclOperation.ALL, AclPermissionType.ALLOW),
        acl(ResourceType.TOPIC, "*", user, AclOperation.WRITE, AclPermissionType.DENY)],
        request_timeout=15)
    for future in done.values():
        future.result(timeout=15)


def _security(secured: Secured, kind: str, **changes: str) -> tuple[str, dict[str, str]]:
    """(bootstrap, kafka.security) of one way in; `changes` override the security keys."""
    if kind == "carol":
        address, sec = secured.address("SASL_SSL"), {
            "protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
            "username": NO_IDEMPOTENCE_USER, "password": NO_IDEMPOTENCE_PASSWORD,
            "ca_file": secured.pem("ca.pem")}
    elif kind == "scram":
        address, sec = secured.address("SASL_SSL"), {
            "protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
            "username": SCRAM_USER, "password": SCRAM_PASSWORD,
            "ca_file": secured.pem("ca.pem")}
    elif kind == "plain":
        address, sec = secured.address("SASL_SSL"), {
            "protocol": "SASL_SSL", "sasl_mechanism": "PLAIN",
            "username": PLAIN_USER, "password": PLAIN_PASSWORD,
            "ca_file": secured.pem("ca.pem")}
    else:
        address, sec = secured.address("SSL"), {
            "protocol": "SSL", "ca_file": secured.pem("ca.pem"),
            "cert_file": secured.pem("client.crt"), "key_file": secured.pem("client.key")}
    return address, {**sec, **changes}


def _config(tmp_path: Path, address: str, security: dict[str, str], topic: str,
            hooks: list[dict[str, Any]], health: int, **kafka: Any) -> Path:
    path = write_config(tmp_path, address, topic, hooks, health_port=health,
                        delivery=DELIVERY)
    data = yaml.safe_load(path.read_text())
    data["kafka"].update({"security": security, "retry_topic_prefix": unique("retry"),
                          "dead_letter_topic": unique("dlq"), **kafka})
    data["hooks_dir"] = None
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _check(config: Path) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "hookd", "check", "--connect", "-c", str(config),
         "--timeout", "5s"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(WORKTREE)})
    assert done.stderr == ""
    return done.returncode, done.stdout


def _one(out: str) -> list[str]:
    """The findings of `check --connect` (after the hooks table): a refused connection
    is the only one."""
    findings = [line for line in out.splitlines() if line.startswith(("ok  ", "FAIL"))]
    assert len(findings) == 1 and out.splitlines()[-1] == findings[0], out
    return findings


def _messages(proc: DaemonProcess, msg: str) -> list[dict[str, Any]]:
    return [line for line in proc.lines() if line.get("msg") == msg]


async def _until_logged(proc: DaemonProcess, msg: str, timeout: float = 30.0
                        ) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while not (found := _messages(proc, msg)):
            assert proc.proc is not None and proc.proc.poll() is None, proc.log.read_text()
            await asyncio.sleep(0.1)
    return found[0]


def _keep(title: str, text: str) -> None:
    """Evidence for the closing note of issue 28, appended to EVIDENCE."""
    with EVIDENCE.open("a") as out:
        out.write(f"=== {title} ({time.strftime('%Y-%m-%d %H:%M:%S')}) ===\n{text.rstrip()}\n\n")


# ------------------------------------------------------------------ every client, delivering


@pytest.mark.parametrize("kind", ["scram", "plain", "mtls"])
async def test_every_client_hookd_opens_connects_and_delivers(
        secured: Secured, receiver: Receiver, tmp_path: Path, kind: str) -> None:
    topic, health = await new_topic(secured.plaintext, 2, f"sec-{kind}"), free_port()
    receiver.plan["/flaky"].append(503)  # once: parked, then read back from the retry topic
    receiver.plan["/doomed"].append(400)  # final: a dead letter
    address, security = _security(secured, kind)
    cfg = _config(tmp_path, address, security, topic,
                  [hook("flaky", "Answered", receiver.url("/flaky")),
                   hook("doomed", "Rejected", receiver.url("/doomed"))], health)
    kafka = yaml.safe_load(cfg.read_text())["kafka"]
    proc = DaemonProcess(cfg).start()
    try:
        await wait_process_ready(health, timeout=60)
        await produce(secured.plaintext, topic, [(b"a", {"event": "Answered", "id": "a1"}),
                                                 (b"b", {"event": "Rejected", "id": "r1"})])
        await receiver.wait_for(2, "/flaky", timeout=30)
        [letter] = await read_topic(secured.plaintext, kafka["dead_letter_topic"], 1)
        [parked] = await read_topic(secured.plaintext, f"{kafka['retry_topic_prefix']}.1s", 1)
        if kind == "scram":
            code, out = await asyncio.to_thread(_check, cfg)
            assert code == 0, out
        proc.signal(signal.SIGTERM)
        assert await proc.wait(30) == 0
    finally:
        proc.stop_now()
    # the source consumer read both events; the retry consumer the parked one (attempt 2)
    assert [r.body and orjson.loads(r.body)["id"] for r in receiver.at("/flaky")] == ["a1",
                                                                                       "a1"]
    assert [orjson.loads(r.body)["id"] for r in receiver.at("/doomed")] == ["r1"]
    # the producer wrote both: the parked delivery and the dead letter
    [delivery] = read_parked(parked.value)
    assert (delivery.hook, delivery.event.id) == ("flaky", "a1")
    doc = orjson.loads(letter.value)
    assert (doc["hook"], doc["event_id"], doc["attempts"]) == ("doomed", "r1", 1)
    # the admin client created hookd's topics
    created = {topic for line in _messages(proc, "topics created") for topic in line["topics"]}
    assert {kafka["dead_letter_topic"], f"{kafka['retry_topic_prefix']}.1s"} <= created
    [connected] = _messages(proc, "kafka connected")
    assert connected["security_protocol"] == security["protocol"]
    assert connected.get("sasl_mechanism") == security.get("sasl_mechanism")
    # kafka.idempotence is "auto" by default: Apache Kafka grants a producer id
    assert isinstance(connected["producer_id"], int) and connected["producer_id"] >= 0
    assert not any(line.get("msg", "").startswith("the broker refused an idempotent")
                   for line in proc.lines())
    assert not _messages(proc, "kafka not reachable, retrying")
    assert not _messages(proc, "cannot connect to kafka, retrying")
    delivered = [line for line in proc.lines()
                 if line.get("msg") == "delivery" and line.get("outcome") == "delivered"]
    assert [(d["hook"], d["attempt"]) for d in delivered] == [("flaky", 2)]
    if kind == "scram":
        keep = {"kafka connected", "topics created", "partitions assigned", "started"}
        lines = [orjson.dumps(line).decode() for line in proc.lines()
                 if line.get("msg") in keep]
        _keep("hookd run over SASL_SSL, SCRAM-SHA-512: connect and ready lines",
              "\n".join(lines))
        _keep("hookd check --connect, SASL_SSL SCRAM-SHA-512, good password (exit 0)", out)


# ------------------------------------------------------------------ one clear line


async def _refused_run(tmp_path: Path, address: str, security: dict[str, str]
                       ) -> dict[str, Any]:
    """`hookd run` with a config the broker refuses: its first retry line (stays unready,
    stops cleanly on SIGTERM)."""
    health = free_port()
    cfg = _config(tmp_path, address, security, unique("refused"),
                  [hook("h", "Answered", "http://127.0.0.1:9/h")], health)
    proc = DaemonProcess(cfg).start()
    try:
        line = await _until_logged(proc, "cannot connect to kafka, retrying", timeout=40)
        assert not _messages(proc, "kafka not reachable, retrying")
        status, body = await get_json(f"http://127.0.0.1:{health}/readyz")
        assert status == 503, body
        proc.signal(signal.SIGTERM)
        assert await proc.wait(30) == 0
    finally:
        proc.stop_now()
    return line


async def test_a_wrong_password_is_one_line_naming_it(
        secured: Secured, tmp_path: Path) -> None:
    for kind in ("scram", "plain"):
        address, security = _security(secured, kind, password="not-the-password")
        topic = await new_topic(secured.plaintext, 1, "pw")
        cfg = _config(tmp_path / kind / "check", address, security, topic,
                      [hook("h", "Answered", "http://127.0.0.1:9/h")], 0)
        code, out = await asyncio.to_thread(_check, cfg)
        assert code == 1
        [line] = _one(out)
        mechanism = security["sasl_mechanism"]
        assert line.startswith(f"FAIL  kafka {address}: cannot connect (SASL_SSL): "
                               f"authentication failed (SASL {mechanism}, user "
                               f"{security['username']}): "), line
        assert "not-the-password" not in out
        run = await _refused_run(tmp_path / kind / "run", address, security)
        assert run["level"] == "error" and run["client"] == "source consumer"
        assert run["error"].startswith(f"authentication failed (SASL {mechanism}, user "), run
        if kind == "scram":
            assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in run["error"]
            _keep("hookd check --connect, SASL_SSL SCRAM-SHA-512, wrong password (exit 1)",
                  out)
            _keep("hookd run, SASL_SSL SCRAM-SHA-512, wrong password: the retry line",
                  orjson.dumps(run).decode())


@pytest.mark.parametrize("kind", ["scram", "mtls"])
async def test_a_broker_certificate_not_signed_by_the_configured_ca_is_one_line(
        secured: Secured, tmp_path: Path, kind: str) -> None:
    stranger = secured.pem("stranger-ca.pem")
    address, security = _security(secured, kind, ca_file=stranger)
    cfg = _config(tmp_path / "check", address, security, unique("untrusted"),
                  [hook("h", "Answered", "http://127.0.0.1:9/h")], 0)
    code, out = await asyncio.to_thread(_check, cfg)
    assert code == 1
    [line] = _one(out)
    assert line == (f"FAIL  kafka {address}: cannot connect ({security['protocol']}): "
                    "certificate verify failed: unable to get local issuer certificate: "
                    "the broker's certificate is not signed by a CA in "
                    f"kafka.security.ca_file {stranger}")
    run = await _refused_run(tmp_path / "run", address, security)
    assert run["level"] == "error"
    assert run["error"].startswith("certificate verify failed: unable to get local issuer "
                                   "certificate: the broker's certificate is not signed"), run


async def test_a_client_certificate_missing_where_the_broker_requires_one_is_named(
        secured: Secured, tmp_path: Path) -> None:
    address, security = _security(secured, "mtls")
    del security["cert_file"], security["key_file"]
    cfg = _config(tmp_path, address, security, unique("nocert"),
                  [hook("h", "Answered", "http://127.0.0.1:9/h")], 0)
    code, out = await asyncio.to_thread(_check, cfg)
    assert code == 1
    [line] = _one(out)
    assert line == (f"FAIL  kafka {address}: cannot connect (SSL): the broker closed the "
                    "connection after the TLS handshake: a listener that requires a client "
                    "certificate, and kafka.security.cert_file is not set, or not a TLS "
                    "listener")


# ------------------------------------------------------------------ the idempotent producer


async def test_where_the_broker_refuses_idempotence_auto_uses_a_plain_producer(
        secured: Secured, tmp_path: Path) -> None:
    """`kafka.idempotence: auto` (the default) on Apache Kafka for a user it refuses
    InitProducerId: one warning, a plain producer, and hookd ready (its consumers read).
    (Granted, the other tests' producers are idempotent: their `producer_id`.)"""
    address, security = _security(secured, "carol")
    health = free_port()
    cfg = _config(tmp_path, address, security, await new_topic(secured.plaintext, 1, "idem"),
                  [hook("h", "Answered", "http://127.0.0.1:9/h")], health)
    assert "idempotence" not in yaml.safe_load(cfg.read_text())["kafka"]
    proc = DaemonProcess(cfg).start()
    try:
        await wait_process_ready(health, timeout=60)
        proc.signal(signal.SIGTERM)
        assert await proc.wait(30) == 0
    finally:
        proc.stop_now()
    [fallback] = [line for line in proc.lines()
                  if line.get("msg", "").startswith("the broker refused an idempotent")]
    assert fallback["level"] == "warning" and "a plain one is used" in fallback["msg"]
    assert fallback["error"].startswith("ClusterAuthorizationFailedError"), fallback
    [connected] = _messages(proc, "kafka connected")
    assert connected["producer_id"] is None and connected["user"] == NO_IDEMPOTENCE_USER


async def test_where_the_user_may_not_write_idempotently_true_waits_unready(
        secured: Secured, tmp_path: Path) -> None:
    address, security = _security(secured, "carol")
    health = free_port()
    cfg = _config(tmp_path, address, security, unique("idem"),
                  [hook("h", "Answered", "http://127.0.0.1:9/h")], health, idempotence=True)
    proc = DaemonProcess(cfg).start()
    try:
        refused = await _until_logged(proc, "the broker refused an idempotent producer, "
                                            "retrying", timeout=40)
        status, _ = await get_json(f"http://127.0.0.1:{health}/readyz")
        assert status == 503
        proc.signal(signal.SIGTERM)
        assert await proc.wait(30) == 0
    finally:
        proc.stop_now()
    assert refused["level"] == "error" and refused["client"] == "producer"
    assert "ClusterAuthorizationFailedError" in refused["error"] or "Authorization" in \
        refused["error"], refused
    assert not _messages(proc, "kafka connected")
