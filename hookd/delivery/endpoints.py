"""Every endpoint in use, and what they share: the global in-flight cap, the connector
(SSRF-guarded resolver, keep-alive time, rules generation), the circuit policy and the
stall settings. An endpoint with nothing to keep (no request, a closed circuit, no idle
connection) is dropped: idle endpoints cost nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from hookd.delivery.circuit import CircuitPolicy, open_circuits
from hookd.delivery.client import Connector
from hookd.delivery.endpoint import Endpoint
from hookd.delivery.slots import Slots
from hookd.loops import RunningLoop
from hookd.requests.proxy import Proxy


async def _no_resolver(host: str, port: int) -> list[str]:
    raise OSError(f"no resolver to look {host} up with")


class Endpoints:
    def __init__(self, per_endpoint: int, total: int, stall_after: float = 1.0,
                 deep_queue: int | None = None, policy: CircuitPolicy | None = None,
                 connector: Connector | None = None, max_response_bytes: int = 65536) -> None:
        self.per_endpoint = per_endpoint
        self.loop = RunningLoop()
        self.total = Slots(total, self.loop)
        self._capacity = total
        self.stall_after = stall_after
        self.deep_queue = 4 * per_endpoint if deep_queue is None else deep_queue
        self.policy = policy or CircuitPolicy()
        self.connector = connector or Connector(_no_resolver)
        self.max_response_bytes = max_response_bytes
        self.progress = time.monotonic()  # the last answer from any endpoint
        self.crowded: Callable[[], bool] = lambda: True  # the daemon sets its own
        self._all: dict[str, Endpoint] = {}
        # the endpoint `scheme://host:port` if in use, else None: the dict's own `get`,
        # without a Python call (asked once or twice per delivery)
        self.find: Callable[[str], Endpoint | None] = self._all.get

    def get(self, name: str) -> Endpoint:
        """The endpoint `scheme://host:port`, made if it is new."""
        endpoint = self._all.get(name)
        if endpoint is None:
            endpoint = self._all[name] = Endpoint(name, self)
        return endpoint

    def via(self, name: str, proxy: Proxy) -> Endpoint:
        """The endpoint `scheme://host:port via PROXY` (hookd.requests.proxy.Route.via),
        made if it is new; its connections go through `proxy`."""
        endpoint = self._all.get(name)
        if endpoint is None:
            endpoint = self._all[name] = Endpoint(name, self, proxy)
        elif endpoint.connections.proxy is not proxy:
            endpoint.connections.use(proxy)  # a reload: the same proxy, maybe new credentials
        return endpoint

    @property
    def in_flight(self) -> int:
        """Attempts on the wire: the global slots taken (counted once, by the slots)."""
        return self._capacity - self.total.free

    def forget(self, endpoint: Endpoint) -> None:
        if endpoint.idle and self._all.get(endpoint.name) is endpoint:
            del self._all[endpoint.name]

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(list(self._all.values()))

    def open_circuits(self) -> list[dict[str, object]]:
        """Each open circuit: its endpoint, its scope (`host`, or `hook` with the hook's
        id) and the seconds until its next probe (0: half-open now)."""
        now = time.monotonic()
        return [c for e in self._all.values()
                for c in open_circuits(e.name, e.circuit, e.hooks, now)]

    def reset(self) -> None:
        """New rules (a reload changed the SSRF guard): kept-alive connections are closed,
        those in use are not reused."""
        self.connector.generation += 1
        self.close()

    def close(self) -> None:
        for endpoint in self:
            endpoint.connections.close()
            self.forget(endpoint)
