"""The one thing hookd serves: GET /healthz and GET /readyz (JSON), GET /metrics
(Prometheus, unless health.metrics.enabled is false), nothing else; and what they say,
read off the daemon's parts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from hookd.config import host_port
from hookd.kafka.stalls import Problem, summary
from hookd.service.hookview import hook_states
from hookd.telemetry.logs import REDACTOR

if TYPE_CHECKING:
    from hookd.delivery.sender import HttpSender
    from hookd.kafka.consumer import ConsumerLoop, RecordAges
    from hookd.pipeline.dispatch import Dispatcher
    from hookd.pipeline.endings import Counters
    from hookd.pipeline.runtime import Runtime

StateFn = Callable[[], tuple[bool, dict[str, Any]]]  # (ready, body)
MetricsFn = Callable[[], bytes]  # the Prometheus text exposition


def _json(body: dict[str, Any], status: int) -> web.Response:
    return web.Response(body=orjson.dumps(body, default=str), status=status,
                        content_type="application/json")


class HealthServer:
    """`/healthz`: 200 while the loop runs. `/readyz`: 200 when config is loaded and the
    consumer holds an assignment, else 503. Both carry the same state document."""

    def __init__(self, listen: str, state: StateFn, metrics: MetricsFn | None = None) -> None:
        parsed = host_port(listen)  # health.listen comes parsed by the config model
        self.host, self.port = parsed.host, parsed.port
        self.state = state
        self.metrics = metrics  # None: no /metrics
        self._runner: web.AppRunner | None = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        _ready, body = self.state()
        return _json({"status": "ok", **body}, 200)

    async def _readyz(self, _request: web.Request) -> web.Response:
        ready, body = self.state()
        status = "ready" if ready else "stalled" if body.get("stalls") else "not ready"
        return _json({"status": status, **body}, 200 if ready else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        assert self.metrics is not None
        return web.Response(body=self.metrics(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        if self.metrics is not None:
            app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:  # tests ask for a free port; learn which one we got
            # AppRunner.addresses: each listening socket's getsockname() (public since 3.3)
            self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def status_line(runtime: Runtime | None, counters: Counters | None,
                stalls: list[Problem] | None = None) -> str:
    """systemd's one-line STATUS (`systemctl status hookd`); a stall comes first."""
    if runtime is None:
        return "starting"
    return ((f"STALLED: {summary(stalls)}; " if stalls else "")
            + f"generation {runtime.generation}, {len(runtime.hooks)} hooks"
            + (f", delivered {counters.delivered}, parked {counters.parked}, dead-lettered "
               f"{counters.dead_lettered}" if counters else ""))


def is_ready(runtime: Runtime | None, source: ConsumerLoop | None, stopping: bool,
             stalls: list[Problem] | None) -> bool:
    """A config is loaded, the source consumer holds partitions, no consumer is stalled and
    no stop was asked for."""
    return (runtime is not None and source is not None and bool(source.assignment())
            and not stopping and not stalls)


def document(*, runtime: Runtime | None, last_reload: Mapping[str, Any],
             source: ConsumerLoop | None, retries: ConsumerLoop | None, ages: RecordAges,
             dispatcher: Dispatcher | None, sender: HttpSender | None,
             stopping: bool, stalls: list[Problem] | None = None,
             ) -> tuple[bool, dict[str, Any]]:
    """(ready, the state document): each part is None until the daemon has started it.
    Ready means a config is loaded, the source consumer holds partitions, no consumer is
    stalled (`stalls`: see hookd.kafka.stalls) and no stop was asked for. Secrets are masked (a
    token in a disabled hook's reason, say)."""
    assigned = source.assignment() if source else []
    lag = source.lag() if source else {}
    parked_lag = retries.lag() if retries else {}
    c = dispatcher.counters if dispatcher else None
    circuits = sender.endpoints.open_circuits() if sender else []
    body: dict[str, Any] = {
        "config": {"generation": runtime.generation if runtime else None,
                   "loaded_at": runtime.loaded_at if runtime else None,
                   "hooks": len(runtime.hooks) if runtime else 0},
        "last_reload": dict(last_reload),
        "assigned_partitions": [f"{t.topic}-{t.partition}" for t in assigned],
        "retry_partitions": [f"{t.topic}-{t.partition}" for t in
                             (retries.assignment() if retries else [])],
        "lag": {"total": sum(lag.values()), "partitions": lag},
        # how late records were when taken (now - their Kafka timestamp), last 16,384
        "event_age_ms": ages.summary(),
        "counters": {
            "delivered": c.delivered if c else 0,
            # waiting for a next attempt: in memory, plus records in the retry topics
            # this member has not consumed yet (as of their last fetch)
            "retrying": (c.retrying if c else 0) + sum(parked_lag.values()),
            "retrying_in_memory": c.retrying if c else 0,
            "parked_total": c.parked if c else 0,
            "dead_lettered": c.dead_lettered if c else 0,
            "in_flight": sender.endpoints.in_flight if sender else 0,
            "records_pending": dispatcher.pending if dispatcher else 0,
        },
        "open_circuits": circuits,
        "disabled_hooks": dict(dispatcher.disabled) if dispatcher else {},
        # each configured hook: its state, its figures since start, its last error
        "hooks": hook_states(runtime, dispatcher.disabled if dispatcher else {}, circuits,
                             dispatcher.stats if dispatcher else None),
    }
    if stalls:  # the oldest first: what an operator looks at first
        body = {"reason": summary(stalls), "since": stalls[0].as_dict()["since"],
                "stalls": [p.as_dict() for p in stalls], **body}
    ready = is_ready(runtime, source, stopping, stalls)
    return ready, REDACTOR().value(body)
