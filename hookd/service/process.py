"""The process around the daemon: the garbage collector tuned for it, uvloop, the exit code."""

from __future__ import annotations

import asyncio
import gc

from hookd.config import HostPort
from hookd.service.daemon import Daemon


def tune_gc() -> None:
    """Every delivery allocates hundreds of short-lived objects (requests, responses,
    futures, log events) while thousands of long-lived ones stay (config,
    compiled templates, in-flight records): with the default thresholds (700, 10, 10) the
    collector runs every few deliveries and keeps walking the survivors. Freeze what is
    loaded so far and collect the young generation far less often; reference counting
    still frees almost everything at once."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def run_daemon(config_path: str, health_listen: HostPort | None = None) -> int:
    tune_gc()
    daemon = Daemon(config_path, health_listen=health_listen)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(daemon.main())
    return uvloop.run(daemon.main())

