"""Starting hookd's Kafka clients: all four, in order, or none; waiting for a broker that is
not there yet (no crash loop while it is down), and saying why each try failed."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from hookd.config import KafkaConfig
from hookd.kafka.clients import (
    connection_settings,
    make_admin,
    make_producer,
    make_retry_consumer,
    make_source_consumer,
)

log = structlog.get_logger("hookd.daemon")
_DIAGNOSE_TIMEOUT = 5.0  # seconds, each connection of a diagnosis
_NO_IDEMPOTENCE = ("kafka.idempotence needs Kafka 0.11+ (and, where ACLs are on, "
                   "IDEMPOTENT_WRITE on the cluster, or from Kafka 3.0 WRITE on a topic); "
                   "set it to auto or false for a broker without it")
_AUTO_IDEMPOTENCE = ("kafka.idempotence is auto: Kafka 0.11+ grants it (where ACLs are on: "
                     "IDEMPOTENT_WRITE on the cluster, or from Kafka 3.0 WRITE on a topic); "
                     "false: never asked")


async def connect(kafka: KafkaConfig, stop: asyncio.Event) -> dict[str, Any] | None:
    """"source consumer", "retry consumer", "producer", "admin", started in this order
    (stop them in any order at the end); None if `stop` was set before they all started.
    Tries again with a doubling delay (0.5 s up to 30 s)."""
    delay = 0.5
    while not stop.is_set():
        named = {"source consumer": make_source_consumer(kafka),
                 "retry consumer": make_retry_consumer(kafka),
                 "producer": make_producer(kafka), "admin": make_admin(kafka)}
        name = ""
        try:
            for name in named:
                if name == "producer":
                    named[name] = await start_producer(kafka, named[name])
                else:
                    await named[name].start()
        except Exception as exc:  # KafkaError; also what a client raises by mistake
            # (aiokafka's SCRAM exchange raised KeyError on a refused login): retry
            if name == "producer" and kafka.idempotence is True and refused(exc):
                log.error("the broker refused an idempotent producer, retrying",
                          client=name, error=str(exc), retry_in=delay, hint=_NO_IDEMPOTENCE)
            else:
                why = await _why(exc, kafka, stop)
                if why.refused:  # a setting to fix: the password, the CA, the certificate
                    log.error("cannot connect to kafka, retrying", client=name,
                              error=why.text, retry_in=delay)
                else:
                    log.warning("kafka not reachable, retrying", client=name, error=why.text,
                                retry_in=delay)
            for client in named.values():
                with contextlib.suppress(Exception):
                    await stop_client(client)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 30.0)
            continue
        sec = kafka.security
        log.info("kafka connected", bootstrap=list(kafka.bootstrap_servers),
                 security_protocol=sec.protocol, sasl_mechanism=sec.sasl_mechanism,
                 user=sec.username, clients=list(named),
                 producer_id=producer_id(named["producer"]))
        return named
    return None


def refused(exc: BaseException) -> bool:
    """The broker answered, and said no (not: it could not be reached)."""
    return isinstance(exc, KafkaError) and not isinstance(exc, KafkaConnectionError)


async def start_producer(kafka: KafkaConfig, producer: Any = None) -> Any:
    """`producer` (else one made from the config) started. With `kafka.idempotence: auto`,
    a broker that refuses the idempotent one (no InitProducerId, or no IDEMPOTENT_WRITE
    for hookd's user) gets a plain one instead, and a warning says so."""
    producer = make_producer(kafka) if producer is None else producer
    try:
        await producer.start()
    except Exception as exc:
        if kafka.idempotence != "auto" or not refused(exc):
            raise
        with contextlib.suppress(Exception):
            await stop_client(producer)
        log.warning("the broker refused an idempotent producer: a plain one is used, so a "
                    "write retried after a lost acknowledgement may be stored twice",
                    error=f"{type(exc).__name__}: {exc}", hint=_AUTO_IDEMPOTENCE)
        producer = make_producer(kafka, idempotent=False)
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await stop_client(producer)
            raise
    return producer


def producer_id(producer: Any) -> int | None:
    """The producer id the broker granted an idempotent producer (None: a plain one)."""
    manager = getattr(producer, "_txn_manager", None)  # aiokafka's; None when not idempotent
    return None if manager is None else getattr(manager, "producer_id", None)


@dataclass(frozen=True)
class Cause:
    """Why no connection to the brokers could be used, in one phrase. `refused`: the broker
    (or its certificate) said no: a setting to fix, not a network to wait for."""

    text: str
    refused: bool


_MISMATCH = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


def cause_of(exc: BaseException, kafka: KafkaConfig) -> Cause:
    """One failed connection's exception, as a phrase naming the setting it points at."""
    sec = kafka.security
    if isinstance(exc, SaslAuthenticationFailed):  # the broker's own words follow
        said = exc.args[0] if exc.args else exc.description
        return Cause(f"authentication failed (SASL {sec.sasl_mechanism}, user "
                     f"{sec.username}): {said} (kafka.security.username, password)", True)
    if isinstance(exc, UnsupportedSaslMechanismError):
        return Cause(f"SASL mechanism {sec.sasl_mechanism} not enabled on the broker: "
                     f"{exc.args[0] if exc.args else exc} (kafka.security.sasl_mechanism)",
                     True)
    if isinstance(exc, ssl.SSLCertVerificationError):
        text = f"certificate verify failed: {exc.verify_message}"
        if exc.verify_code in _MISMATCH:
            return Cause(f"{text} (the broker's certificate does not name the address "
                         "in kafka.bootstrap_servers or advertised by the broker)", True)
        trusted = (f"kafka.security.ca_file {sec.ca_file}" if sec.ca_file
                   else "the system's CA certificates (kafka.security.ca_file not set)")
        return Cause(f"{text}: the broker's certificate is not signed by a CA in "
                     f"{trusted}", True)
    if isinstance(exc, ssl.SSLError):
        return Cause(f"TLS handshake failed: {exc.reason or exc} (is the listener "
                     f"{sec.protocol}? kafka.security.protocol)", True)
    if isinstance(exc, KafkaConnectionError) and "closed" in str(exc):
        if sec.protocol in ("SSL", "SASL_SSL"):
            wants = ("the client certificate (kafka.security.cert_file)" if sec.cert_file
                     else "a client certificate, and kafka.security.cert_file is not set")
            return Cause("the broker closed the connection after the TLS handshake: a "
                         f"listener that requires {wants}, or not a TLS listener", True)
        return Cause("the broker closed the connection: a TLS or SASL listener? "
                     f"(kafka.security.protocol is {sec.protocol})", True)
    if isinstance(exc, TimeoutError):
        return Cause("no answer", False)
    if isinstance(exc, ConnectionRefusedError):
        return Cause("connection refused (nothing listens there: check "
                     "kafka.bootstrap_servers)", False)
    text = str(exc)
    name = type(exc).__name__
    return Cause(text if text.startswith(name) else f"{name}: {text}",
                 isinstance(exc, KafkaError) and not isinstance(exc, KafkaConnectionError))


async def diagnose(kafka: KafkaConfig, timeout: float) -> Cause | None:
    """Why the clients could not bootstrap, which aiokafka only logs (its start raises
    "Unable to bootstrap from [...]"): one connection to each bootstrap server, as its
    clients open one (TLS, then SASL), each bounded by `timeout`. The cause of the first
    server's failure, a refusal preferred (a wrong password says more than a broker that is
    down); None if one of them connects."""
    settings = connection_settings(kafka)
    found: list[Cause] = []
    for host, port, _family in collect_hosts(list(kafka.bootstrap_servers), randomize=False):
        try:
            conn = await asyncio.wait_for(
                create_conn(host, port, request_timeout_ms=max(1, int(timeout * 1000)),
                            **settings), timeout)
        except Exception as exc:  # anything a connection raises is the answer here
            found.append(cause_of(exc, kafka))
            continue
        conn.close()
        return None
    return next((c for c in found if c.refused), found[0] if found else None)


async def _why(exc: BaseException, kafka: KafkaConfig, stop: asyncio.Event) -> Cause:
    """A client's start failed: why, asking the brokers when aiokafka kept the cause to its
    own log (the wrong password, the untrusted certificate); given up if `stop` is set."""
    if type(exc) is KafkaConnectionError and str(exc).startswith(
            "KafkaConnectionError: Unable to bootstrap"):
        asking = asyncio.ensure_future(diagnose(kafka, _DIAGNOSE_TIMEOUT))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([asking, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (asking, stopping):
                task.cancel()
        if asking.done() and not asking.cancelled() and asking.exception() is None and (
                cause := asking.result()) is not None:
            return cause
    return cause_of(exc, kafka)


async def stop_client(client: Any) -> None:
    closer = getattr(client, "stop", None) or client.close
    await closer()
