"""Trace context on the real broker (issue 31): a record's `traceparent`/`tracestate` Kafka
headers, or a structured CloudEvent's attributes, arrive at the receiver unchanged; an
invalid one never does; a hook with `trace_context: false` sends none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.harness import hook, new_topic, produce, running, wait_ready, write_config
from tests.integration.receiver import Receiver

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
CE_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_trace_context_arrives_unchanged(broker: Any, receiver: Receiver,
                                               tmp_path: Path) -> None:
    topic = await new_topic(broker.bootstrap, 1, "trace")
    hooks = [hook("traced", "Answered", receiver.url("/traced/{{ id }}")),
             hook("quiet", "Answered", receiver.url("/quiet/{{ id }}"), trace_context=False)]
    cfg = write_config(tmp_path, broker.bootstrap, topic, hooks)
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        await produce(broker.bootstrap, topic, [(b"k", {"event": "Answered", "id": "h"})],
                      headers=[("traceparent", PARENT.encode()),
                               ("tracestate", b"pbx=7f3a,congo=t61rcWkgMzE")])
        await produce(broker.bootstrap, topic, [(b"k", {
            "specversion": "1.0", "type": "Answered", "id": "ce", "source": "/pbx",
            "traceparent": CE_PARENT, "data": {"id": "ce"}})])
        await produce(broker.bootstrap, topic, [(b"k", {"event": "Answered", "id": "bad"})],
                      headers=[("traceparent", b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01")])
        await receiver.wait_for(6)

    got = {r.path: r.headers for r in receiver.requests}
    sent = got["/traced/h"]
    print(f"\nreceiver got traceparent={sent['traceparent']} tracestate={sent['tracestate']}")
    assert sent["traceparent"] == PARENT and sent["traceparent"].split("-")[1] == TRACE_ID
    assert sent["tracestate"] == "pbx=7f3a,congo=t61rcWkgMzE"
    assert got["/traced/ce"]["traceparent"] == CE_PARENT and "tracestate" not in got["/traced/ce"]
    assert "traceparent" not in got["/traced/bad"]  # all-zero trace-id: dropped
    for path in ("/quiet/h", "/quiet/ce", "/quiet/bad"):
        assert "traceparent" not in got[path] and "tracestate" not in got[path]
