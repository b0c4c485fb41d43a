"""`hookd status`: the running daemon's hook registry, read off its health listener (the
`hooks` section of the state document, GET /readyz), one row per hook, or JSON for
scripts."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import yaml

from hookd.config import HealthConfig, HostPort, host_port

DEFAULT_LISTEN = HealthConfig().listen
COLUMNS = ("ID", "EVENT", "REQUEST", "STATE", "DELIVERED", "DEAD-LETTERED", "RETRYING",
           "LAST ERROR")


def listen_of(config_path: str) -> HostPort:
    """health.listen of a main config file, read alone: the rest (secrets, hooks) need not
    be readable by whoever asks for the status."""
    data = yaml.safe_load(Path(config_path).read_text()) or {}
    health = data.get("health") if isinstance(data, dict) else None
    listen = health.get("listen") if isinstance(health, dict) else None
    return host_port(str(listen)) if listen else DEFAULT_LISTEN


def url_of(listen: str) -> str:
    """http://HOST:PORT/readyz; a wildcard address is asked on the loopback."""
    parsed = host_port(listen)
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(parsed.host, parsed.host)
    return f"http://{f'[{host}]' if ':' in host else host}:{parsed.port}/readyz"


def fetch(listen: str, timeout: float = 5.0) -> dict[str, Any]:
    """The state document (a daemon not ready answers 503, with the same document)."""
    try:
        with urllib.request.urlopen(url_of(listen), timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code != 503:
            raise
        raw = exc.read()
    body: dict[str, Any] = json.loads(raw)
    return body


def _time(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def state_text(hook: dict[str, Any]) -> str:
    if hook["state"] == "circuit-open":
        scope = f" ({hook['circuit_scope']})" if hook.get("circuit_scope") else ""
        return f"circuit-open{scope} until {_time(hook.get('circuit_open_until'))}"
    return str(hook["state"])


def rows(hooks: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [COLUMNS]
    for h in hooks:
        error = h.get("last_error")
        out.append((str(h["id"]), ",".join(h["event"]), f"{h['method']} {h['url']}",
                    state_text(h), str(h.get("delivered", 0)),
                    str(h.get("dead_lettered", h.get("failed", 0))),  # (`failed`: before 27)
                    str(h.get("retrying", 0)),
                    f"{_time(h.get('last_error_at'))} {error}" if error else "-"))
    return out


def print_table(doc: dict[str, Any], out: TextIO) -> None:
    table = rows(doc.get("hooks", []))
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS) - 1)]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1],
              file=out)
    config = doc.get("config", {})
    print(f"{len(table) - 1} hook(s), config generation {config.get('generation')}; "
          f"daemon {doc.get('status')}" + (f": {doc['reason']}" if doc.get("reason") else ""),
          file=out)


def cmd_status(config_path: str, listen: str | None, as_json: bool, out: TextIO,
               err: TextIO, timeout: float = 5.0, *, explicit: bool = True) -> int:
    """`listen` (--health-listen) first, else health.listen of `config_path`; a default
    config path (`explicit` False) that does not exist means the default listener."""
    try:
        if listen is None and not explicit and not Path(config_path).exists():
            listen = DEFAULT_LISTEN
        where = listen or listen_of(config_path)
        doc = fetch(where, timeout)
    except (OSError, urllib.error.URLError, ValueError, yaml.YAMLError) as exc:
        print(f"hookd status: {exc}", file=err)
        return 1
    if as_json:
        print(json.dumps({"status": doc.get("status"),
                          "generation": doc.get("config", {}).get("generation"),
                          "hooks": doc.get("hooks", [])}, ensure_ascii=False), file=out)
    else:
        print_table(doc, out)
    return 0
