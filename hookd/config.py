"""The configuration's data model (pydantic v2, strict, unknown keys rejected)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from hookd.durations import PATTERN as DURATION_PATTERN
from hookd.durations import parse_duration
from hookd.errors import SpecError


def _duration(value: object) -> float:
    """Config durations carry a unit (`30` alone is ambiguous: seconds? ms?)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"a duration needs a unit, e.g. '{value}s' or '{value}ms'")
    try:
        return parse_duration(value)
    except SpecError as exc:
        raise ValueError(exc.message) from None


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


# Written "250ms", "5s", "2h", always with a unit; the JSON schema says so, so that
# editors validating the YAML against `hookd schema config` accept "10s" and refuse 10.
Duration = Annotated[float, BeforeValidator(_duration), WithJsonSchema({
    "type": "string", "pattern": rf"^\s*{DURATION_PATTERN}\s*$",
    "description": "a duration with its unit: 250ms, 5s, 5m, 2h, 1d, 1h30m"})]
NonEmptyStr = Annotated[str, Field(min_length=1)]
HOOK_ID = r"^[A-Za-z0-9_.-]+$"
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(ms|s|m|h)\s*$")
DEFAULT_SCHEDULE = ["5s", "5m", "30m", "2h", "5h", "10h", "14h", "20h", "24h"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SecurityConfig(Model):
    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

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
    heartbeat_interval: Duration = 3.0
    max_poll_interval: Duration = 300.0
    fetch_max_wait: Duration = 0.1
    # the retry topics' consumer: it idles most of the time, and a partition it resumes
    # when a parked record comes due is read within this (so due retries may be this late)
    retry_fetch_max_wait: Duration = 0.5
    max_poll_records: int = Field(default=500, ge=1)
    commit_interval: Duration = 1.0
    revoke_grace: Duration = 3.0  # wait this long for in-flight work of revoked partitions


class KafkaConfig(Model):
    bootstrap_servers: Annotated[list[NonEmptyStr], BeforeValidator(_as_list)] = Field(
        default_factory=lambda: ["localhost:9092"], min_length=1)
    topics: Annotated[list[NonEmptyStr], BeforeValidator(_as_list)] = Field(
        default_factory=lambda: ["cc.events"], min_length=1)
    group_id: NonEmptyStr = "hookd"
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
    # 0.11+ (with ACLs: IDEMPOTENT_WRITE); off by default, as brokers such as tansu lack it
    idempotence: bool = False
    # the codec of that producer's batches (aiokafka's compression_type); lz4 and zstd
    # cost little CPU for a good ratio on JSON. Consumers read every codec whatever this says
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "none"
    consumer: ConsumerTuning = ConsumerTuning()


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


def host_port(value: str) -> str:
    """`value` if it is HOST:PORT (the health endpoint's address), else ValueError."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return value


class HealthConfig(Model):
    listen: str = "127.0.0.1:8081"
    # a consumer that cannot fetch, read a partition's records or commit for this long is
    # stalled: /readyz answers 503 with the reason, and the log says it at error level
    stall_after: Duration = Field(default=30.0, gt=0)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        return host_port(value)


class LoggingConfig(Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


# ----------------------------------------------------------------------------- hooks


class RequestConfig(Model):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: NonEmptyStr
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    raw_body: str | None = None
    fields: list[NonEmptyStr] | None = None
    map: dict[str, NonEmptyStr] = Field(default_factory=dict)
    content_type: NonEmptyStr = "application/json"
    timeout: Duration | None = None

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _HEADER_NAME.match(name):
                raise ValueError(f"invalid header name {name!r}")
        return value

    @model_validator(mode="after")
    def _one_body(self) -> RequestConfig:
        given = [k for k in ("body", "raw_body") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError("give either body or raw_body, not both")
        if given and (self.fields is not None or self.map):
            raise ValueError(f"fields/map shape the default body; they cannot go with {given[0]}")
        if self.method == "GET" and given:
            raise ValueError("a GET request has no body; use query or fields")
        return self


class ApiKeyAuth(Model):
    type: Literal["api_key"]
    header: NonEmptyStr = "x-api-key"
    value: NonEmptyStr

    @field_validator("header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not _HEADER_NAME.match(value):
            raise ValueError(f"invalid header name {value!r}")
        return value


class BasicAuth(Model):
    type: Literal["basic"]
    username: str
    password: str


class BearerAuth(Model):
    type: Literal["bearer"]
    token: NonEmptyStr


class OAuth2Auth(Model):
    type: Literal["oauth2"]
    token_url: NonEmptyStr
    client_id: NonEmptyStr
    client_secret: NonEmptyStr
    scope: str | None = None


Auth = Annotated[ApiKeyAuth | BasicAuth | BearerAuth | OAuth2Auth, Field(discriminator="type")]


class TlsConfig(Model):
    verify: bool = True
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if self.key_file and not self.cert_file:
            raise ValueError("key_file needs cert_file")
        return self


def signing_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (`whsec_` + base64, prefix optional)."""
    raw = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("signing secret must be base64, optionally prefixed whsec_") from None
    if len(key) < 16:
        raise ValueError("signing secret is too short (need at least 16 bytes of key)")
    return key


class SigningConfig(Model):
    secret: Annotated[list[NonEmptyStr], BeforeValidator(_as_list), Field(min_length=1)]

    @field_validator("secret")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        for secret in value:
            signing_key(secret)
        return value


class HookRetry(Model):
    schedule: list[Duration]


def parse_rate(text: str) -> tuple[float, float]:
    """`50/s` → (50 requests, per 1.0 second)."""
    m = _RATE.match(text)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"invalid rate {text!r} (expected e.g. 50/s, 600/m)")
    return float(m.group(1)), {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[m.group(2)]


class HookConfig(Model):
    id: Annotated[str, Field(pattern=HOOK_ID)]
    description: str = ""
    enabled: bool = True
    event: Annotated[list[NonEmptyStr], BeforeValidator(_as_list), Field(min_length=1)]
    filter: dict[str, Any] | None = None
    request: RequestConfig
    auth: Auth | None = None
    tls: TlsConfig | None = None
    signing: SigningConfig | None = None
    retry: HookRetry | None = None
    rate_limit: str | None = None

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rate(value)
        return value


class HooksFile(Model):
    """A file in hooks_dir."""

    hooks: list[HookConfig] = Field(default_factory=list)


class Config(Model):
    kafka: KafkaConfig = KafkaConfig()
    events: EventsConfig = EventsConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    health: HealthConfig = HealthConfig()
    logging: LoggingConfig = LoggingConfig()
    shutdown_timeout: Duration = 20.0
    hooks_dir: str | None = "hooks.d"
    hooks: list[HookConfig] = Field(default_factory=list)
