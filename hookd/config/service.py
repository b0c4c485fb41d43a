"""The daemon's own settings: Kafka, events, delivery, health, logging."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hookd.config.durations import parse_duration
from hookd.config.proxies import NoProxyEntry, Proxy
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
    """How every Kafka client hookd opens (both consumers, the producer, the admin client)
    connects and authenticates."""

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """The brokers' listener protocol. SSL and SASL_SSL check the brokers' certificates
    and host names."""
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    """Required with SASL_PLAINTEXT and SASL_SSL. OAUTHBEARER is refused at load: hookd
    has no OAuth token provider for Kafka."""
    username: str | None = None
    """The SASL user (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 need it)."""
    password: str | None = None
    """The SASL password: write it as a secret reference, e.g. `${cred:kafka_password}`
    (masked in every log line and report)."""
    ca_file: str | None = None
    """PEM file of the CA that signed the brokers' certificates (SSL, SASL_SSL); unset:
    the system's CAs. Read at load: an unreadable file is a config error."""
    cert_file: str | None = None
    """PEM client certificate, for brokers that require mutual TLS (SSL, SASL_SSL)."""
    key_file: str | None = None
    """PEM private key of `cert_file` (needs `cert_file`)."""

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
    """A member that sends no heartbeat for this long is evicted and its partitions go to
    the others (Kafka bounds it by the brokers' `group.min.session.timeout.ms`, 6s, and
    `group.max.session.timeout.ms`). With `group_instance_id`, a restart must come back
    within it."""
    # a tenth of the session timeout, not aiokafka's 3 s: the members learn of a rebalance
    # (a member left or was evicted) at their next heartbeat, so a hand-over takes up to
    # this much longer (Kafka's docs: "adjusted even lower to control the expected time for
    # normal rebalances"); one small request a second per member and consumer
    heartbeat_interval: Duration = 1.0
    """How often each consumer tells the group coordinator it is alive; members learn of a
    rebalance at their next heartbeat, so a hand-over takes up to this much longer."""
    max_poll_interval: Duration = 300.0
    """Kafka's `max.poll.interval.ms`: a consumer that asks for no records for this long
    leaves the group."""
    fetch_max_wait: Duration = 0.1
    """How long the broker may hold a fetch of the source topics waiting for data; lower
    means less latency and more requests."""
    # the retry topics' consumer: it idles most of the time, and a partition it resumes
    # when a parked record comes due is read within this (so due retries may be this late)
    retry_fetch_max_wait: Duration = 0.5
    """The same for the retry topics' consumer, which idles most of the time: a parked
    delivery that comes due may be read up to this late."""
    max_poll_records: int = Field(default=500, ge=1)
    """Records taken from one partition per read."""
    commit_interval: Duration = 1.0
    """How often the finished prefix of each partition is committed (and a paused
    partition's end offset asked, for its lag)."""
    revoke_grace: Duration = 3.0  # wait this long for in-flight work of revoked partitions
    """On a rebalance, how long the work of revoked partitions may finish before what is
    left of it is cancelled (and redelivered by the next owner, same `webhook-id`)."""


class KafkaConfig(Model):
    """The cluster, the topics and the consumer group. Every setting here is read at start
    only: a reload that changes one logs `kafka, health and logging settings change only on
    restart`."""

    bootstrap_servers: Annotated[list[NonEmptyStr], BeforeValidator(as_list)] = Field(
        default_factory=lambda: ["localhost:9092"], min_length=1)
    """HOST:PORT of one or more brokers to ask for the cluster's metadata."""
    topics: Annotated[list[NonEmptyStr], BeforeValidator(as_list)] = Field(
        default_factory=lambda: ["cc.events"], min_length=1)
    """The source topics of events. Never created by hookd: one that does not exist is
    named in a warning at start and read once someone creates it."""
    group_id: NonEmptyStr = "hookd"
    """The consumer group. Every process with the same group shares the partitions; the
    retry consumer is `<group_id>.retry`; `hookd replay` writes with the transactional id
    `<group_id>.replay` (one replay at a time per group)."""
    # static membership (KIP-345): this process's name in the group, stable across its
    # restarts (hookd@.service: "hookd-${env:HOOKD_INSTANCE}"). A restart within the
    # session timeout keeps its partitions without a rebalance; a dead one's partitions
    # wait the whole session timeout. The retry consumer is "<id>.retry". None: dynamic
    group_instance_id: str | None = None
    """Static membership (KIP-345): this process's stable name in the group, e.g.
    `hookd-${env:HOOKD_INSTANCE}` with hookd@.service. A restart within the session
    timeout keeps its partitions without a rebalance; a process gone for good holds them
    for the whole session timeout. Not a secret (not masked). Unset: a dynamic member."""
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    """Where a group with no committed offset starts reading: the oldest record kept, or
    only records written from now on."""
    security: SecurityConfig = SecurityConfig()
    """TLS and SASL for every Kafka client hookd opens."""
    retry_topic_prefix: NonEmptyStr = "hookd.retry"
    """Durable retries are parked in `<prefix>.<delay>` topics (`hookd.retry.5m`, ...),
    one per delay of the retry schedules longer than `delivery.retry.inline_max`, created
    at start."""
    # of each topic hookd creates at start (retry tiers, and the dead-letter topic)
    retry_partitions: int = Field(default=4, ge=1)
    """Partitions of each topic hookd creates at start (the retry tiers and the
    dead-letter topic); a topic that exists is left as it is."""
    retry_replication: int = Field(default=3, ge=1)  # 1 for a single-broker test cluster
    """Replicas of each topic hookd creates (1 on a single-broker test cluster)."""
    max_request_size: int = Field(default=1 << 20, ge=65536)  # bytes, the producer's limit
    """The producer's largest record, in bytes. A dead letter bigger than this is cut to
    fit (with a `note`); the topics' `max.message.bytes` must be at least this."""
    dead_letter_topic: NonEmptyStr = "hookd.dlq"
    """Where final failures and undecodable records go (created at start if missing).
    `hookd replay` keeps the letters it moved in `<dead_letter_topic>.replayed`."""
    outcomes_topic: NonEmptyStr | None = None
    """The delivery log: one JSON record per final outcome of a delivery (`delivered`,
    `dead_lettered`, `skipped`) and per parking (`parked`), keyed by event id; its schema
    is `hookd schema outcomes`. Created at start if missing, like the dead-letter topic.
    A source record is committed only once its outcome records are acknowledged, so the
    log has no gaps (a redelivered record writes its outcomes again). Unset: no log."""
    client_id: NonEmptyStr = "hookd"
    """How the brokers name hookd's connections in their logs, quotas and ACL audit; give
    each deployment its own."""
    # the producer of parked deliveries and dead letters: with it, a write retried after a
    # lost ack is not stored twice (a parked duplicate is a duplicate delivery). Kafka
    # 0.11+ (with ACLs: IDEMPOTENT_WRITE). "auto": idempotent where the broker grants it,
    # else a plain producer and a warning (tansu lacks it); true: required (hookd waits
    # until the broker grants it); false: never
    idempotence: bool | Literal["auto"] = "auto"
    """The producer of parked deliveries and dead letters, idempotent: a write retried
    after a lost acknowledgement is not stored twice. `auto`: where the broker grants it,
    else one warning and a plain producer; `true`: required (hookd stays unready until
    granted); `false`: never asked. Needs IDEMPOTENT_WRITE on the cluster before Kafka 3.0."""
    # the codec of that producer's batches (aiokafka's compression_type); lz4 and zstd
    # cost little CPU for a good ratio on JSON. Consumers read every codec whatever this says
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "none"
    """The codec of hookd's own producer (retry and dead-letter topics); `lz4` or `zstd`
    are recommended. The source topics are read in every codec whatever this says."""
    consumer: ConsumerTuning = ConsumerTuning()
    """Consumer timings; the defaults suit production."""

    @field_validator("outcomes_topic")
    @classmethod
    def _outcomes_apart(cls, log: str | None, info: ValidationInfo) -> str | None:
        """The delivery log shares no topic with what hookd reads or its dead letters (the
        fields it is compared with come before it, so `info.data` has them when valid)."""
        dlq = info.data.get("dead_letter_topic")
        if log is not None and (log in info.data.get("topics", ()) or
                                log in (dlq, f"{dlq}.replayed") or
                                log.startswith(f"{info.data.get('retry_topic_prefix')}.")):
            raise ValueError(f"{log!r} must be a topic of its own, not a source topic, the "
                             "dead-letter topic, its replay ledger or a retry topic")
        return log

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
    """How a record's event is read."""

    name_field: NonEmptyStr = "event"
    """Dotted path of the event name in a plain JSON record (CloudEvents take it from
    `type` or the `ce_type` header)."""


class RetryConfig(Model):
    """The default retry schedule (a hook's `retry` overrides it)."""

    schedule: list[Duration] = Field(
        default_factory=lambda: [parse_duration(d) for d in DEFAULT_SCHEDULE])
    """Delays between attempts: one attempt, then one more per delay (Standard Webhooks'
    suggestion by default: 10 attempts over about 3 days). A longer `Retry-After` wins."""
    jitter: float = Field(default=0.2, ge=0, le=1)
    """Each delay is drawn within ± this share of itself (0.2: ±20 %)."""
    # delays up to this wait in memory; longer ones are parked in a retry topic
    inline_max: Duration = 10.0
    """Delays up to this wait in memory; longer ones park the delivery in a retry topic
    and let the source offset move on."""


class BreakerConfig(Model):
    """Per endpoint: after `failures` failed attempts in a row the circuit opens and
    deliveries are parked, not sent; after `cooldown` one probe is let through."""

    failures: int = Field(default=5, ge=1)
    """Failures in a row that open a circuit: no answer (refused, reset, DNS, TLS, a
    timeout) for the host's circuit; 5xx or 429 answers for the hook's own."""
    cooldown: Duration = 30.0
    """How long an open circuit waits before one probe is let through."""
    max_cooldown: Duration = 600.0
    """The cooldown doubles after each failed probe, up to this."""


class DeliveryConfig(Model):
    """How requests are sent: timeouts, limits, retries, circuits, the SSRF guard."""

    timeout: Duration = 10.0
    """Per attempt, from sending to the whole answer, unless the hook sets
    `request.timeout`."""
    max_in_flight: int = Field(default=512, ge=1)
    """Requests on the wire at once, whole process. Consumption pauses when 4 times this
    many records are in flight (bounded memory)."""
    per_endpoint_in_flight: int = Field(default=64, ge=1)
    """Requests at once per endpoint (`scheme://host:port`); more wait in its queue, so
    one slow endpoint cannot take the global slots."""
    # an endpoint with every slot busy and no answer for this long is stalled: deliveries
    # waiting for it are parked in a retry topic instead of holding up the consumer
    stall_after: Duration = 1.0
    """An endpoint with every slot busy and no answer for this long is stalled: its queue
    and new deliveries to it are parked in a retry topic until it answers again."""
    retry: RetryConfig = RetryConfig()
    """The default retry schedule."""
    circuit_breaker: BreakerConfig = BreakerConfig()
    """When deliveries to a failing host (or a failing hook) are parked instead of sent."""
    allow_networks: list[str] = Field(default_factory=list)
    """CIDRs the SSRF guard lets through although loopback, private, link-local or
    otherwise not global (e.g. `10.20.0.0/16` for an internal CRM). A change takes effect
    at once on reload (pooled connections are dropped)."""
    max_response_bytes: int = Field(default=65536, ge=0)
    """The most of a response body that is read (for the log and the dead letter); the
    rest is not read."""
    proxy: Proxy | None = None
    """The HTTP proxy every hook's requests go through (a hook's own `proxy` overrides
    it): `http://[user:password@]host:port`; https endpoints through a CONNECT tunnel
    (TLS end to end). Credentials are secrets (masked everywhere; write them as
    `${cred:...}`), sent as `Proxy-Authorization: Basic`. The environment's `HTTPS_PROXY`
    and `NO_PROXY` are not read. Null: direct."""
    no_proxy: list[NoProxyEntry] = Field(default_factory=list)
    """Destinations reached directly although a proxy is set, as curl and requests write
    them: `*` (all), a host name (it and its subdomains: `example.com` and
    `.example.com` both match `api.example.com`), an IP address or CIDR (matching URLs
    written with an IP), each optionally with `:port`."""

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
    """The Prometheus endpoint on the health listener."""

    # GET /metrics on the health listener, and the per-attempt figures behind it (status
    # class, duration); off: neither (per-hook outcomes for `hookd status` are still kept)
    enabled: bool = True
    """Serve `GET /metrics` and keep the per-attempt figures behind it (status class,
    duration). Off: neither; `hookd status` works either way."""


class HealthConfig(Model):
    """The health listener: `/healthz`, `/readyz`, `/metrics`. Read at start only."""

    listen: Listen = Field(default="127.0.0.1:8081", validate_default=True)
    """HOST:PORT of the health listener (`hookd run --health-listen` overrides it, as
    hookd@.service does). Keep it on the loopback: `/readyz` lists hook URLs and errors."""
    metrics: MetricsConfig = MetricsConfig()
    """`GET /metrics`, Prometheus text format."""
    # a consumer that cannot fetch, read a partition's records or commit for this long is
    # stalled: /readyz answers 503 with the reason, and the log says it at error level
    stall_after: Duration = Field(default=30.0, gt=0)
    """A consumer that cannot fetch, read a partition's records or commit, or writes to a
    retry or dead-letter topic that keep failing, for this long: `/readyz` answers 503
    `stalled` with the reason, and the log says `consumer stalled` at error level."""


class LoggingConfig(Model):
    """Log lines on stdout (journald under systemd). Read at start only."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    """The lowest level written; `info` gives one line per delivery outcome."""
    format: Literal["json", "console"] = "json"
    """`json`: one JSON object per line; `console`: key=value lines for a terminal."""


# ----------------------------------------------------------------------------- hooks
