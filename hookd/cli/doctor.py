"""`hookd check --connect`: the loaded config against the real cluster and endpoints.

One line per fact, `ok` or `FAIL` first: the brokers answer (with the configured security);
each source topic exists (and its partitions); both consumer groups (the source topics'
and the retry topics') can be described; the dead-letter topic and each retry topic exist,
or would be created at start; each distinct hook endpoint (`scheme://host:port`, known
whenever the URL's scheme and host are literal: the compiled hook's `url.target`)
resolves to an address the SSRF guard allows, and is reached directly or through which
proxy (its credentials masked), that way tested: a CONNECT tunnel asked for (and closed
unused) for https, the proxy taking a connection for plain HTTP. Nothing on the cluster is changed
(CreateTopics' validate_only is not used: some brokers, tansu among them, create the
topics anyway). A broker that cannot be reached is one line.

Every request is bounded by `timeout`, so the whole check ends within a few of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TextIO, TypeVar

from aiokafka.errors import KafkaConnectionError, for_code

from hookd.delivery.connection import ProtocolError
from hookd.delivery.outcomes import proxy_refused
from hookd.delivery.ssrf import AddressPolicy, GuardedResolver, Lookup, system_lookup
from hookd.delivery.tunnel import ProxyRefused, probe
from hookd.errors import BlockedDestination
from hookd.kafka import topics
from hookd.kafka.clients import make_admin
from hookd.kafka.connect import diagnose
from hookd.kafka.parking import tier_topic
from hookd.pipeline.runtime import Runtime, tiers_of
from hookd.requests.render import CompiledHook
from hookd.telemetry.redact import Redactor

T = TypeVar("T")
PER_DELIVERY = "decided per delivery"


@dataclass(frozen=True)
class Finding:
    ok: bool
    text: str

    def __str__(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.text}"


class Unreachable(Exception):
    """The brokers did not answer in time (or refused the connection)."""


def _why(exc: BaseException) -> str:
    text = str(exc)
    return text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"


async def _bounded(what: Awaitable[T], timeout: float) -> T:
    return await asyncio.wait_for(what, timeout)


class Doctor:
    def __init__(self, runtime: Runtime, timeout: float = 5.0, admin: Any = None,
                 lookup: Lookup = system_lookup) -> None:
        self.runtime, self.timeout = runtime, timeout
        self.kafka = runtime.config.kafka
        self.admin = admin  # built in run(): aiokafka wants the running loop
        self.lookup = lookup
        self.redact = Redactor(runtime.secrets)

    async def run(self, say: Callable[[Finding], None]) -> bool:
        """Every finding passed to `say` as it is made; True when none failed."""
        failed = False
        if self.admin is None:
            self.admin = make_admin(self.kafka, request_timeout=self.timeout)

        def note(ok: bool, text: str) -> None:
            nonlocal failed
            failed |= not ok
            say(Finding(ok, self.redact(text)))

        try:
            await self._kafka(note)
        except Unreachable as exc:
            note(False, str(exc))
            return False
        finally:
            with contextlib.suppress(Exception):
                await self.admin.close()
        await self._endpoints(note)
        return not failed

    # -- kafka -----------------------------------------------------------------------------
    async def _kafka(self, note: Callable[[bool, str], None]) -> None:
        kafka, brokers = self.kafka, ",".join(self.kafka.bootstrap_servers)
        try:
            await _bounded(self.admin.start(), self.timeout)
            cluster = await _bounded(self.admin.describe_cluster(), self.timeout)
            described = await _bounded(self.admin.describe_topics(), self.timeout)
        except Exception as exc:
            why = ("no answer" if isinstance(exc, TimeoutError) else
                   "no connection (refused, or closed by the other end: check the addresses "
                   "and kafka.security)" if type(exc) is KafkaConnectionError else _why(exc))
            cause = None
            if type(exc) is KafkaConnectionError:  # aiokafka logged the cause: ask again
                with contextlib.suppress(Exception):
                    cause = await diagnose(kafka, self.timeout)
            if cause is not None and cause.refused:
                raise Unreachable(f"kafka {brokers}: cannot connect "
                                  f"({kafka.security.protocol}): {cause.text}") from None
            raise Unreachable(f"kafka {brokers}: not reachable ({kafka.security.protocol}, "
                              f"timeout {self.timeout:g}s): "
                              f"{cause.text if cause is not None else why}") from None
        nodes = len(cluster.get("brokers") or [])
        partitions = {str(t["topic"]): len(t["partitions"]) for t in described
                      if t.get("error_code", 0) == 0}
        note(True, f"kafka {brokers}: connected ({kafka.security.protocol}, client_id "
                   f"{kafka.client_id}), {nodes} broker(s), {len(partitions)} topic(s)")
        for topic in kafka.topics:
            if topic in partitions:
                note(True, f"source topic {topic}: {partitions[topic]} partition(s)")
            else:
                note(False, f"source topic {topic}: does not exist")
        for group in (kafka.group_id, f"{kafka.group_id}.retry"):
            note(*await self._group(group))
        delays = {tier_topic(kafka.retry_topic_prefix, t): t for t in tiers_of(self.runtime)}
        own = [("dead-letter topic", kafka.dead_letter_topic)] + [
            ("retry topic", topic) for topic in delays]
        if kafka.outcomes_topic is not None:
            own.insert(1, ("outcomes topic", kafka.outcomes_topic))
        configs = await self._retention([t for t in delays if t in partitions])
        for kind, topic in own:
            problem = (topics.retention_problem(configs[topic], delays[topic])
                       if topic in configs else None)
            if problem is not None:
                note(False, f"{kind} {topic}: could drop a parked delivery before it is due: "
                            f"{problem}; set cleanup.policy=delete and retention.ms to at "
                            f"least {int(2 * delays[topic] * 1000)} (kafka-configs.sh --alter)")
            elif topic in partitions:
                note(True, f"{kind} {topic}: {partitions[topic]} partition(s)"
                           + (f", retention {configs[topic].get('retention.ms')} ms"
                              if topic in configs else ""))
            elif kafka.retry_replication > nodes:
                note(False, f"{kind} {topic}: does not exist, and cannot be created with "
                            f"replication {kafka.retry_replication} on {nodes} broker(s) "
                            "(kafka.retry_replication)")
            else:
                note(True, f"{kind} {topic}: does not exist, hookd creates it at start "
                           f"({kafka.retry_partitions} partition(s), replication "
                           f"{kafka.retry_replication})")

    async def _retention(self, names: list[str]) -> dict[str, dict[str, str]]:
        """The retry topics' retention settings; none when the cluster will not say (no
        DESCRIBE_CONFIGS permission): that is not a reason to fail the check."""
        if not names:
            return {}
        try:
            return await _bounded(topics.topic_configs(self.admin, names), self.timeout)
        except Exception as exc:
            logging.getLogger("hookd.doctor").debug("describe_configs failed: %s", exc)
            return {}

    async def _group(self, group: str) -> tuple[bool, str]:
        try:
            answers = await _bounded(self.admin.describe_consumer_groups([group]), self.timeout)
            found = [g for a in answers for g in a.to_object()["groups"] if g["group"] == group]
        except Exception as exc:
            return False, f"consumer group {group}: cannot be described: {_why(exc)}"
        if not found:
            return False, f"consumer group {group}: not in the broker's answer"
        info = found[0]
        if info["error_code"]:
            return False, f"consumer group {group}: {for_code(info['error_code']).__name__}"
        state = info["state"] or "unknown"
        return True, f"consumer group {group}: {state}, {len(info['members'])} member(s)"

    # -- endpoints -------------------------------------------------------------------------
    async def _endpoints(self, note: Callable[[bool, str], None]) -> None:
        delivery = self.runtime.config.delivery
        resolver = GuardedResolver(AddressPolicy(delivery.allow_networks), self.lookup)
        users: dict[str, tuple[CompiledHook, list[str]]] = {}
        for hook in self.runtime.hooks:  # keyed as its connections are pooled
            key = hook.endpoint if hook.endpoint is not None else f"~{_route_shown(hook)}"
            users.setdefault(key, (hook, []))[1].append(hook.id)
        for _, (first, hooks) in sorted(users.items()):
            named = f"hook(s) {', '.join(hooks)}"
            target = first.url.target  # worked out once, at compile
            if target is None:
                note(True, f"endpoint of {named}: host {PER_DELIVERY} (templated URL); "
                           f"{_route_shown(first)}")
                continue
            host = f"[{target.host}]" if ":" in target.host else target.host
            endpoint = f"{target.scheme}://{host}:{target.port}"
            try:
                allowed = await _bounded(resolver.resolve(target.host, target.port),
                                         self.timeout)
            except BlockedDestination as exc:
                note(False, f"endpoint {endpoint} ({named}): {exc}")
                continue
            except TimeoutError:
                note(False, f"endpoint {endpoint} ({named}): no DNS answer within "
                            f"{self.timeout:g}s")
                continue
            except OSError as exc:
                note(False, f"endpoint {endpoint} ({named}): does not resolve: {_why(exc)}")
                continue
            found = f"endpoint {endpoint} ({named}): resolves to {', '.join(allowed)}, allowed"
            via = first.proxy.via(target) if first.proxy is not None else None
            if via is None:
                note(True, f"{found}; direct")
                continue
            proxy = via[1]
            try:
                seen = await _bounded(probe(proxy, target, self.lookup), self.timeout)
            except TimeoutError:
                note(False, f"{found}; through proxy {proxy.shown}: no answer within "
                            f"{self.timeout:g}s")
            except ProxyRefused as exc:  # said as a delivery's outcome says it
                note(False, f"{found}; through proxy {proxy.shown}: "
                            f"{proxy_refused(exc).message}")
            except (ProtocolError, OSError) as exc:
                note(False, f"{found}; through proxy {proxy.shown}: {_why(exc)}")
            else:
                note(True, f"{found}; through proxy {proxy.shown}: {seen}")


def _route_shown(hook: CompiledHook) -> str:
    """How a hook's requests leave, as `check` says it."""
    if hook.proxy is None:
        return "direct"
    return f"through proxy {hook.proxy.proxy.shown} unless delivery.no_proxy names the host"


def check_connect(runtime: Runtime, timeout: float, out: TextIO) -> int:
    """Print the findings as they come; 0 when none failed, else 1."""
    def say(finding: Finding) -> None:
        print(finding, file=out, flush=True)

    quiet = logging.getLogger("aiokafka")  # its connection errors are one finding here
    level, quiet.level = quiet.level, logging.CRITICAL
    try:
        return 0 if asyncio.run(Doctor(runtime, timeout).run(say)) else 1
    finally:
        quiet.setLevel(level)
