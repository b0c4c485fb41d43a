"""The hook registry as an operator sees it: each configured hook, its state (enabled,
disabled by config, disabled by a 410, or its circuit open until when) and its figures
since start. The `hooks` section of the health document (`hookd status` reads it), and
`hookd_hook_enabled` in /metrics."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from hookd.hookstats import HookStats
from hookd.runtime import Runtime

ENABLED, DISABLED, GONE, CIRCUIT_OPEN = "enabled", "disabled", "disabled-by-410", "circuit-open"


def open_until(circuits: Iterable[Mapping[str, Any]], now: float
               ) -> dict[tuple[str, str | None], float]:
    """(endpoint, hook id, or None for the host's circuit) -> epoch time of its next probe,
    from `Endpoints.open_circuits()`."""
    return {(str(c["endpoint"]), c.get("hook") if c.get("scope") == "hook" else None):
            now + float(c.get("next_probe_in_s") or 0.0) for c in circuits}


def hook_states(runtime: Runtime | None, disabled: Mapping[str, str],
                circuits: Iterable[Mapping[str, Any]], stats: HookStats | None,
                now: float | None = None) -> list[dict[str, Any]]:
    """One entry per configured hook, in config order. A hook whose URL is templated has
    no endpoint known at load: only a circuit of its own (scope hook) is found for it."""
    if runtime is None:
        return []
    now = time.time() if now is None else now
    opened = open_until(circuits, now)
    by_hook = {hook: until for (_endpoint, hook), until in opened.items() if hook}
    out = []
    for hook in runtime.hooks:
        config, until = hook.config, None
        if not config.enabled:
            state, reason = DISABLED, "enabled: false"
        elif hook.id in disabled:
            state, reason = GONE, disabled[hook.id]
        else:
            state, reason = ENABLED, None
            found = [u for u in ((opened.get((hook.endpoint, None)),
                                  opened.get((hook.endpoint, hook.id))) if hook.endpoint
                                 else (by_hook.get(hook.id),)) if u is not None]
            until = max(found) if found else None
            if until is not None:
                state = CIRCUIT_OPEN
        figures = stats.of(hook.id).as_dict() if stats is not None else {}
        out.append({"id": hook.id, "event": list(config.event),
                    "method": config.request.method, "url": config.request.url,
                    "state": state, "reason": reason, "circuit_open_until": until,
                    **figures})
    return out


def enabled(entry: Mapping[str, Any]) -> bool:
    """Deliveries are attempted for it (an open circuit is a pause, not a disabling)."""
    return entry["state"] in (ENABLED, CIRCUIT_OPEN)
