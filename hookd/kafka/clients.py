"""aiokafka clients built from the config: security passed through, standard Kafka APIs only."""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context

from hookd.config import KafkaConfig


def _common(cfg: KafkaConfig) -> dict[str, Any]:
    return {"bootstrap_servers": list(cfg.bootstrap_servers), **connection_settings(cfg)}


def connection_settings(cfg: KafkaConfig) -> dict[str, Any]:
    """What one connection to a broker is opened with (aiokafka's `create_conn` takes
    these keywords): the client id and the security section."""
    sec = cfg.security
    kwargs: dict[str, Any] = {"client_id": cfg.client_id, "security_protocol": sec.protocol}
    if sec.protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = create_ssl_context(
            cafile=sec.ca_file, certfile=sec.cert_file, keyfile=sec.key_file)
    if sec.sasl_mechanism:
        kwargs["sasl_mechanism"] = sec.sasl_mechanism
        kwargs["sasl_plain_username"] = sec.username
        kwargs["sasl_plain_password"] = sec.password
    return kwargs


def tls_problem(cfg: KafkaConfig) -> str | None:
    """Why the security section's TLS files cannot make a context (unreadable, not PEM,
    key and certificate not a pair), or None: checked when the config is loaded, not
    left to the first connection."""
    if cfg.security.protocol not in ("SSL", "SASL_SSL"):
        return None
    try:
        _common(cfg)
    except (OSError, ssl.SSLError) as exc:
        return f"cannot load the TLS files: {exc}"
    return None


def make_consumer(cfg: KafkaConfig, group_id: str | None = None,
                  from_start: bool = False, fetch_max_wait: float | None = None,
                  instance_id: str | None = None,
                  read_committed: bool = False) -> AIOKafkaConsumer:
    """`from_start`: a partition without a committed offset is read from its beginning
    whatever `auto_offset_reset` says: hookd's own topics (retry tiers, dead letters)
    hold nothing that may be skipped. `fetch_max_wait`: instead of the configured one.
    `instance_id`: a static member of the group (KIP-345), else a dynamic one.
    `read_committed`: records of an aborted or still open transaction are not read."""
    tune = cfg.consumer
    return AIOKafkaConsumer(
        group_id=group_id or cfg.group_id,
        isolation_level="read_committed" if read_committed else "read_uncommitted",
        group_instance_id=instance_id,
        enable_auto_commit=False,  # offsets move only when deliveries are final
        auto_offset_reset="earliest" if from_start else cfg.auto_offset_reset,
        session_timeout_ms=int(tune.session_timeout * 1000),
        heartbeat_interval_ms=int(tune.heartbeat_interval * 1000),
        max_poll_interval_ms=int(tune.max_poll_interval * 1000),
        fetch_max_wait_ms=int((tune.fetch_max_wait if fetch_max_wait is None
                               else fetch_max_wait) * 1000),
        max_poll_records=tune.max_poll_records,
        **_common(cfg),
    )


def make_source_consumer(cfg: KafkaConfig) -> AIOKafkaConsumer:
    """The source topics' consumer: the group `group_id`, a static member of it when
    `group_instance_id` is set."""
    return make_consumer(cfg, instance_id=cfg.group_instance_id)


def make_retry_consumer(cfg: KafkaConfig) -> AIOKafkaConsumer:
    """The retry topics' consumer: a group of its own, every parked record read, and
    `retry_fetch_max_wait` (it idles most of the time: fewer idle fetches). Static as
    `<group_instance_id>.retry` when the source consumer is static: a restart then moves
    neither group's partitions, and each member's retry partitions stay with it.
    Read committed: `hookd replay` parks its letters in transactions, and a replay killed
    halfway must not have its unfinished moves delivered (the next replay moves them)."""
    instance = cfg.group_instance_id
    return make_consumer(cfg, f"{cfg.group_id}.retry", from_start=True,
                         fetch_max_wait=cfg.consumer.retry_fetch_max_wait,
                         instance_id=None if instance is None else f"{instance}.retry",
                         read_committed=True)


def make_reader(cfg: KafkaConfig) -> AIOKafkaConsumer:
    """A consumer of no group, for partitions assigned by hand and read from their
    beginning (`hookd replay`); only committed transactions are read."""
    tune = cfg.consumer
    return AIOKafkaConsumer(group_id=None, enable_auto_commit=False,
                            auto_offset_reset="earliest", isolation_level="read_committed",
                            fetch_max_wait_ms=int(tune.fetch_max_wait * 1000),
                            max_poll_records=tune.max_poll_records, **_common(cfg))


def make_producer(cfg: KafkaConfig, idempotent: bool | None = None) -> AIOKafkaProducer:
    """acks=all: a parked delivery or a dead letter is on every in-sync replica before its
    source offset may move. `idempotent`: instead of `kafka.idempotence` (whose "auto"
    asks for an idempotent one first)."""
    return AIOKafkaProducer(acks="all", linger_ms=2, max_request_size=cfg.max_request_size,
                            enable_idempotence=(cfg.idempotence is not False
                                                if idempotent is None else idempotent),
                            compression_type=compression_type(cfg), **_common(cfg))


def make_transactional_producer(cfg: KafkaConfig, transactional_id: str,
                                timeout: float) -> AIOKafkaProducer:
    """A producer whose writes become visible together or not at all (Kafka transactions;
    idempotent by necessity). A second producer started with the same `transactional_id`
    fences this one and aborts its open transaction; one left open by a killed process is
    aborted after `timeout` seconds."""
    return AIOKafkaProducer(acks="all", linger_ms=2, max_request_size=cfg.max_request_size,
                            enable_idempotence=True, transactional_id=transactional_id,
                            transaction_timeout_ms=int(timeout * 1000),
                            compression_type=compression_type(cfg), **_common(cfg))


def compression_type(cfg: KafkaConfig) -> str | None:
    """aiokafka's name for the configured codec (None: uncompressed)."""
    return None if cfg.compression == "none" else cfg.compression


def make_admin(cfg: KafkaConfig, request_timeout: float | None = None) -> AIOKafkaAdminClient:
    """`request_timeout`: seconds, instead of aiokafka's 40 (`hookd check --connect`)."""
    extra = {} if request_timeout is None else {
        "request_timeout_ms": max(1, int(request_timeout * 1000))}
    return AIOKafkaAdminClient(**extra, **_common(cfg))
