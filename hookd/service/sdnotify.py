"""systemd's notify protocol (sd_notify): READY, RELOADING, STOPPING, STATUS, WATCHDOG.

Written out because it is one datagram: the PyPI clients are unmaintained or need libsystemd.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


class Notifier:
    """Sends to $NOTIFY_SOCKET when set; a no-op otherwise (not under systemd)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + path[1:] if path.startswith("@") else path
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        enabled = usec.isdigit() and int(usec) > 0 and mine  # as sd_watchdog_enabled()
        self.watchdog_interval = int(usec) / 2e6 if enabled else None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, **fields: str | int) -> None:
        if not self.address:
            return
        message = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect(self.address)
                sock.sendall(message)
            except OSError:
                pass  # systemd gone or socket unwritable: nothing useful to do

    def ready(self, status: str = "") -> None:
        if status:
            self.send(ready=1, status=status)
        else:
            self.send(ready=1)

    def reloading(self) -> None:
        self.send(reloading=1, monotonic_usec=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    def stopping(self) -> None:
        self.send(stopping=1)

    def status(self, text: str) -> None:
        self.send(status=text)

    def watchdog(self) -> None:
        self.send(watchdog=1)
