"""The daemon's own settings: Kafka, events, delivery, health, logging."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from hookd.config.durations import parse_duration
from hookd.config.types import (
    DEFAULT_SCHEDULE,
    Duration,
    Listen,
    Model,
    NonEmptyStr,
    as_list,
)

_INSTANCE_ID = re.compile(r"[A-Za-z0-9._-]{1,243}")


class SecurityConfig(Model):
    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @field_validator("sasl_mechanism")
    @classmethod
    def _supported(cls, value: str | None) -> str | None:
        """Named in the schema, so that the refusal says why rather than "not one of"."""
        if value == "OAUTHBEARER":
            raise ValueError("OAUTHBEARER is not supported: hookd has no OAuth token provider "
                             "for Kafka (aiokafka's sasl_oauth_token_provider); use PLAIN, "
                             "SCRAM-SHA-256 or SCRAM-SHA-512")
        return value

    @model_validator(mode="after")
    def _sasl_complete(self) -> SecurityConfig:
        if self.protocol.startswith("SASL") and self.sasl_mechanism is None:
            raise ValueError(f"protocol {self.protocol} needs sasl_mechanism")
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and not (
            self.username and self.password
        ):
            raise ValueError(f"sasl_mechanism {self.sasl_mechanism} needs username and password")
        files = [k for k in ("ca_file", "cert_file", "key_file") if getattr(self, k)]
        if files and self.protocol not in ("SSL", "SASL_SSL"):
            raise ValueError(f"{files[0]} is for TLS: it needs protocol SSL or SASL_SSL, "
                             f"not {self.protocol}")
        if self.key_file and not self.cert_file:
            raise ValueError("key_file needs cert_file")
        return self


class ConsumerTuning(Model):
    """Consumer timings; the defaults suit production, tests shorten them."""

    session_timeout: Duration = 10.0
    # a tenth of the session timeout, not aiokafka's 3 s: the members learn of a rebalance
    # (a member left or was evicted) at their next heartbeat, so a hand-over takes up to
    # this much longer (Kafka's docs: "adjusted even lower to control the expected time for
    # normal rebalances"); one small request a second per member and consumer
    heartbeat_interval: Duration = 1.0
    max_poll_interval: Duration = 300.0
    fetch_max_wait: Duration = 0.1
    # the retry topics' consumer: it idles most of the time, and a partition it resumes
    # when a parked record comes due is read within this (so due retries may be this late)
    retry_fetch_max_wait: Duration = 0.5
    max_poll_records: int = Field(default=500, ge=1)
    commit_interval: Duration = 1.0
    revoke_grace: Duration = 3.0  # wait this long for in-flight work of revoked partitions


class KafkaConfig(Model):
    bootstrap_servers: Annotated[list[NonEmptyStr], BeforeValidator(as_list)] = Field(
        default_factory=lambda: ["localhost:9092"], min_length=1)
    topics: Annotated[list[NonEmptyStr], BeforeValidator(as_list)] = Field(
        default_factory=lambda: ["cc.events"], min_length=1)
    group_id: NonEmptyStr = "hookd"
    # static membership (KIP-345): this process's name in the group, stable across its
    # restarts (hookd@.service: "hookd-${env:HOOKD_INSTANCE}"). A restart within the
    # session timeout keeps its partitions without a rebalance; a dead one's partitions
    # wait the whole session timeout. The retry consumer is "<id>.retry". None: dynamic
    group_instance_id: str | None = None
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    security: SecurityConfig = SecurityConfig()
    retry_topic_prefix: NonEmptyStr = "hookd.retry"
    # of each topic hookd creates at start (retry tiers, and the dead-letter topic)
    retry_partitions: int = Field(default=4, ge=1)
    retry_replication: int = Field(default=3, ge=1)  # 1 for a single-broker test cluster
    max_request_size: int = Field(default=1 << 20, ge=65536)  # bytes, the producer's limit
    dead_letter_topic: NonEmptyStr = "hookd.dlq"
    client_id: NonEmptyStr = "hookd"
    # the producer of parked deliveries and dead letters: with it, a write retried after a
    # lost ack is not stored twice (a parked duplicate is a duplicate delivery). Kafka
    # 0.11+ (with ACLs: IDEMPOTENT_WRITE). "auto": idempotent where the broker grants it,
    # else a plain producer and a warning (tansu lacks it); true: required (hookd waits
    # until the broker grants it); false: never
    idempotence: bool | Literal["auto"] = "auto"
    # the codec of that producer's batches (aiokafka's compression_type); lz4 and zstd
    # cost little CPU for a good ratio on JSON. Consumers read every codec whatever this says
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "none"
    consumer: ConsumerTuning = ConsumerTuning()

    @field_validator("group_instance_id")
    @classmethod
    def _instance_id(cls, value: str | None) -> str | None:
        """What Kafka takes as a group.instance.id (its own check, JoinGroupRequest's),
        with room for the retry consumer's ".retry"."""
        if value is not None and (not _INSTANCE_ID.fullmatch(value) or value in (".", "..")):
            raise ValueError(f"{value!r} is not a group instance id: 1 to 243 characters "
                             "of A-Z, a-z, 0-9, '.', '_' and '-'")
        return value


class EventsConfig(Model):
    name_field: NonEmptyStr = "event"


class RetryConfig(Model):
    schedule: list[Duration] = Field(
        default_factory=lambda: [parse_duration(d) for d in DEFAULT_SCHEDULE])
    jitter: float = Field(default=0.2, ge=0, le=1)
    # delays up to this wait in memory; longer ones are parked in a retry topic
    inline_max: Duration = 10.0


class BreakerConfig(Model):
    """Per endpoint: after `failures` failed attempts in a row the circuit opens and
    deliveries are parked, not sent; after `cooldown` one probe is let through."""

    failures: int = Field(default=5, ge=1)
    cooldown: Duration = 30.0
    max_cooldown: Duration = 600.0


class DeliveryConfig(Model):
    timeout: Duration = 10.0
    max_in_flight: int = Field(default=512, ge=1)
    per_endpoint_in_flight: int = Field(default=64, ge=1)
    # an endpoint with every slot busy and no answer for this long is stalled: deliveries
    # waiting for it are parked in a retry topic instead of holding up the consumer
    stall_after: Duration = 1.0
    retry: RetryConfig = RetryConfig()
    circuit_breaker: BreakerConfig = BreakerConfig()
    allow_networks: list[str] = Field(default_factory=list)
    max_response_bytes: int = Field(default=65536, ge=0)

    @field_validator("allow_networks")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"invalid CIDR {cidr!r}: {exc}") from None
        return value


class MetricsConfig(Model):
    # GET /metrics on the health listener, and the per-attempt figures behind it (status
    # class, duration); off: neither (per-hook outcomes for `hookd status` are still kept)
    enabled: bool = True


class HealthConfig(Model):
    listen: Listen = Field(default="127.0.0.1:8081", validate_default=True)
    metrics: MetricsConfig = MetricsConfig()
    # a consumer that cannot fetch, read a partition's records or commit for this long is
    # stalled: /readyz answers 503 with the reason, and the log says it at error level
    stall_after: Duration = Field(default=30.0, gt=0)


class LoggingConfig(Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


# ----------------------------------------------------------------------------- hooks
