"""What a real cluster needs, on the aiokafka objects hookd/kafka.py builds: compression,
SASL (PLAIN, SCRAM), TLS with a CA and a client certificate, client_id. No broker here;
the TLS context is proven with a handshake against a loopback server that demands the
client certificate."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.record.default_records import DefaultRecordBatch

from hookd.config import KafkaConfig
from hookd.kafka.clients import make_admin, make_consumer, make_producer, make_retry_consumer
from tests.unit.conftest import WriteConfig

BOOT = ["127.0.0.1:9"]
CODECS = {"none": DefaultRecordBatch.CODEC_NONE, "gzip": DefaultRecordBatch.CODEC_GZIP,
          "snappy": DefaultRecordBatch.CODEC_SNAPPY, "lz4": DefaultRecordBatch.CODEC_LZ4,
          "zstd": DefaultRecordBatch.CODEC_ZSTD}


def kafka(**settings: Any) -> KafkaConfig:
    return KafkaConfig.model_validate({"bootstrap_servers": BOOT, **settings})


BUILT: list[Any] = []


@pytest.fixture(autouse=True)
async def _closed() -> AsyncIterator[None]:
    """Every client built is closed (none was started: only loop-bound parts to free)."""
    yield
    while BUILT:
        client = BUILT.pop()
        await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())


def clients(cfg: KafkaConfig) -> dict[str, Any]:
    """The AIOKafkaClient inside each client the daemon builds (aiokafka keeps the settings
    there, privately: there is no public getter)."""
    built: dict[str, Any] = {"consumer": make_consumer(cfg), "retry": make_retry_consumer(cfg),
                             "producer": make_producer(cfg), "admin": make_admin(cfg)}
    BUILT.extend(built.values())
    return {name: getattr(client, "_client", None) or client.client  # the producer's
            for name, client in built.items()}


# ---------------------------------------------------------------------------- compression


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
async def test_the_producer_compresses_its_batches_with_the_configured_codec(
        codec: str) -> None:
    producer = make_producer(kafka(compression=codec))
    try:
        assert producer._compression_type == (None if codec == "none" else codec)
        batch = producer.create_batch()  # what hookd's BatchedProducer fills
        value = b'{"hook": "crm", "payload": {"a": 1}}' * 100
        assert batch.append(key=b"k", value=value, timestamp=None) is not None
        built = DefaultRecordBatch(bytes(batch._build()))  # as the broker stores it
        assert built.compression_type == CODECS[codec]
        assert [r.value for r in built] == [value]
        assert (len(batch._build()) < len(value)) is (codec != "none")
    finally:
        await producer.stop()


def test_compression_defaults_to_none() -> None:
    assert KafkaConfig().compression == "none"


@pytest.mark.parametrize("value", ["brotli", "LZ4", "", True, 1])
def test_a_bad_codec_is_reported_where_it_is_written(write_config: WriteConfig,
                                                     value: Any) -> None:
    tree = write_config(f"""
        kafka:
          group_id: g
          compression: {value!r}
        """ if isinstance(value, str) else f"""
        kafka:
          group_id: g
          compression: {str(value).lower()}
        """)
    issues = tree.issues()
    assert [(i.line, i.path) for i in issues] == [(3, "kafka.compression")]
    assert "'none', 'gzip', 'snappy', 'lz4' or 'zstd'" in issues[0].message
    assert str(issues[0]).startswith(f"{tree.main}:3: kafka.compression: ")


# ---------------------------------------------------------------------------- SASL


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
async def test_sasl_reaches_consumer_producer_and_admin(protocol: str, mechanism: str) -> None:
    cfg = kafka(client_id="hookd-eu1", security={
        "protocol": protocol, "sasl_mechanism": mechanism,
        "username": "svc-hookd", "password": "s3cret"})
    for name, client in clients(cfg).items():
        assert client._security_protocol == protocol, name
        assert client._sasl_mechanism == mechanism, name
        assert (client._sasl_plain_username, client._sasl_plain_password) == (
            "svc-hookd", "s3cret"), name
        assert client._client_id == "hookd-eu1", name
        assert client._bootstrap_servers == BOOT, name
        tls = client._ssl_context
        assert (tls is not None) is (protocol == "SASL_SSL"), name
        if tls is not None:  # the system's CAs, host names checked
            assert tls.verify_mode == ssl.CERT_REQUIRED and tls.check_hostname


async def test_plaintext_sends_no_credentials_and_the_default_client_id() -> None:
    for name, client in clients(kafka()).items():
        assert client._security_protocol == "PLAINTEXT", name
        assert client._ssl_context is None, name
        assert client._sasl_plain_username is None, name
        assert client._client_id == "hookd", name


@pytest.mark.parametrize("security, message", [
    ({"protocol": "SASL_SSL"}, "protocol SASL_SSL needs sasl_mechanism"),
    ({"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512", "username": "u"},
     "sasl_mechanism SCRAM-SHA-512 needs username and password"),
    ({"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "username": "u",
      "password": "p", "ca_file": "/ca.pem"},
     "ca_file is for TLS: it needs protocol SSL or SASL_SSL, not SASL_PLAINTEXT"),
    ({"protocol": "SSL", "key_file": "/k.pem"}, "key_file needs cert_file"),
])
def test_incomplete_security_is_refused(write_config: WriteConfig, security: dict[str, Any],
                                        message: str) -> None:
    inline = ", ".join(f"{k}: {v}" for k, v in security.items())
    tree = write_config(f"""
        kafka:
          security: {{{inline}}}
        """)
    issues = tree.issues()
    assert [(i.line, i.path) for i in issues] == [(2, "kafka.security")]
    assert message in issues[0].message


# ---------------------------------------------------------------------------- TLS


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Any]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as files."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("svc-hookd@example.test")
    paths = {"ca_file": tmp_path / "ca.pem", "cert_file": tmp_path / "client.pem",
             "key_file": tmp_path / "client.key"}
    ca.cert_pem.write_to_path(str(paths["ca_file"]))
    client.cert_chain_pems[0].write_to_path(str(paths["cert_file"]))
    client.private_key_pem.write_to_path(str(paths["key_file"]))
    return {"ca": ca, "server": server, "client": client, **paths}


async def _handshake(client_ctx: ssl.SSLContext, ca: trustme.CA,
                     server_cert: trustme.LeafCert) -> str | None:
    """Connect to a loopback TLS server that requires a client certificate signed by `ca`;
    the common name of the certificate the client showed."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(server_ctx)
    ca.configure_trust(server_ctx)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    seen: list[str | None] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert") or {}
        seen.append(next((v for rdn in peer.get("subject", ()) for k, v in rdn
                          if k in ("commonName", "emailAddress")), None)
                    or str(peer.get("subjectAltName")))
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
                                                  server_hostname="127.0.0.1")
        await asyncio.sleep(0.05)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    return seen[0] if seen else None


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
async def test_tls_files_make_the_context_of_every_client(pki: dict[str, Any],
                                                          protocol: str) -> None:
    sasl = ({"sasl_mechanism": "SCRAM-SHA-256", "username": "u", "password": "p"}
            if protocol == "SASL_SSL" else {})
    cfg = kafka(security={"protocol": protocol, "ca_file": str(pki["ca_file"]),
                          "cert_file": str(pki["cert_file"]), "key_file": str(pki["key_file"]),
                          **sasl})
    built = clients(cfg)
    for name, client in built.items():
        ctx = client._ssl_context
        assert client._security_protocol == protocol, name
        assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname, name
        assert len(ctx.get_ca_certs()) == 1, name  # the configured CA, not the system's
    # the producer's context trusts the CA and presents the client certificate
    shown = await _handshake(built["producer"]._ssl_context, pki["ca"], pki["server"])
    assert shown is not None and "svc-hookd" in shown


async def test_a_broker_certificate_from_another_ca_is_refused(pki: dict[str, Any]) -> None:
    cfg = kafka(security={"protocol": "SSL", "ca_file": str(pki["ca_file"])})
    stranger = trustme.CA().issue_cert("127.0.0.1")
    ctx = clients(cfg)["admin"]._ssl_context
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(ctx, pki["ca"], stranger)


def test_unreadable_tls_files_are_a_config_error(write_config: WriteConfig,
                                                 pki: dict[str, Any]) -> None:
    """Found at load (`hookd check` says so), not at the first connection."""
    tree = write_config(f"""
        kafka:
          security: {{protocol: SSL, ca_file: {pki["ca_file"]}, cert_file: {pki["key_file"]}}}
        """)
    issues = tree.issues()
    assert [(i.line, i.path) for i in issues] == [(2, "kafka.security")]
    assert issues[0].message.startswith("cannot load the TLS files: ")
    missing = write_config("""
        kafka:
          security: {protocol: SSL, ca_file: /nonexistent/ca.pem}
        """).issues()
    assert "cannot load the TLS files: " in missing[0].message
