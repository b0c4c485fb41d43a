"""The hook registry as an operator sees it: each configured hook, its state (enabled,
disabled by config, disabled by a 410, or a circuit open until when: its endpoint's, or its
own) and its figures since start. The `hooks` section of the health document (`hookd
status` reads it), and `hookd_hook_enabled` in /metrics."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from hookd.pipeline.runtime import Runtime
from hookd.requests.render import CompiledHook
from hookd.telemetry.hookstats import HookStats

ENABLED, DISABLED, GONE, CIRCUIT_OPEN = "enabled", "disabled", "disabled-by-410", "circuit-open"
HOST, HOOK = "host", "hook"  # an open circuit's scope: its endpoint's, or the hook's own


def open_until(circuits: Iterable[Mapping[str, Any]], now: float
               ) -> dict[tuple[str, str | None], float]:
    """(endpoint, hook id, or None for the host's circuit) -> epoch time of its next probe,
    from `Endpoints.open_circuits()`."""
    return {(str(c["endpoint"]), c.get("hook") if c.get("scope") == "hook" else None):
            now + float(c.get("next_probe_in_s") or 0.0) for c in circuits}


def _open_circuit(hook: CompiledHook, opened: Mapping[tuple[str, str | None], float],
                  by_hook: Mapping[str, float]) -> tuple[float, str] | None:
    """(until when, scope) of the hook's open circuit that stays open longest: its
    endpoint's (scope host) or its own (scope hook); None when neither is open. A hook
    whose host is templated has no endpoint: only a circuit of its own is found for it."""
    if hook.endpoint is None:
        found = [(by_hook[hook.id], HOOK)] if hook.id in by_hook else []
    else:
        found = [(until, scope) for until, scope in (
            (opened.get((hook.endpoint, None)), HOST),
            (opened.get((hook.endpoint, hook.id)), HOOK)) if until is not None]
    return max(found) if found else None


def hook_states(runtime: Runtime | None, disabled: Mapping[str, str],
                circuits: Iterable[Mapping[str, Any]], stats: HookStats | None,
                now: float | None = None) -> list[dict[str, Any]]:
    """One entry per configured hook, in config order; a hook with an open circuit says
    which (`circuit_scope`: host, every hook of its endpoint; hook, its own)."""
    if runtime is None:
        return []
    now = time.time() if now is None else now
    opened = open_until(circuits, now)
    by_hook = {hook: until for (_endpoint, hook), until in opened.items() if hook}
    out = []
    for hook in runtime.hooks:
        config, until, scope = hook.config, None, None
        if not config.enabled:
            state, reason = DISABLED, "enabled: false"
        elif hook.id in disabled:
            state, reason = GONE, disabled[hook.id]
        else:
            state, reason = ENABLED, None
            circuit = _open_circuit(hook, opened, by_hook)
            if circuit is not None:
                (until, scope), state = circuit, CIRCUIT_OPEN
        figures = stats.of(hook.id).as_dict() if stats is not None else {}
        out.append({"id": hook.id, "event": list(config.event),
                    "method": config.request.method, "url": config.request.url,
                    "endpoint": hook.endpoint, "state": state, "reason": reason,
                    "circuit_scope": scope, "circuit_open_until": until, **figures})
    return out


def enabled(entry: Mapping[str, Any]) -> bool:
    """Deliveries are attempted for it (an open circuit is a pause, not a disabling)."""
    return entry["state"] in (ENABLED, CIRCUIT_OPEN)
