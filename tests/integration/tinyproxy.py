"""A real HTTP proxy for the proxy tests: Debian's tinyproxy, in the foreground (`-d -c
FILE`) on a free 127.0.0.1 port, with its own config and log file in a tmp dir. `make test`
installs it (the Makefile's `tinyproxy` prerequisite); missing, the tests fail saying so:
they are never skipped."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

INSTALL = "apt-get install -y --no-install-recommends tinyproxy (or: make test, which does)"


@dataclass
class Tinyproxy:
    port: int
    log: Path
    process: subprocess.Popen[bytes]

    def url(self, credentials: str = "") -> str:
        return f"http://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}"

    def lines(self) -> list[str]:
        """Its log, one entry a line (`CONNECT ...`, `Request (file descriptor N): ...`)."""
        return self.log.read_text(errors="replace").splitlines()

    def requests(self) -> list[str]:
        """The request lines it logged (`Request (file descriptor 7): GET http://...`)."""
        return [line for line in self.lines() if "Request (file descriptor" in line]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def tinyproxy(folder: Path, *extra: str) -> Iterator[Tinyproxy]:
    """tinyproxy running until the block ends; `extra` config lines (`BasicAuth u p`,
    `ConnectPort 443`)."""
    binary = shutil.which("tinyproxy") or next(
        (p for p in ("/usr/bin/tinyproxy", "/usr/sbin/tinyproxy") if Path(p).exists()), None)
    if binary is None:
        raise AssertionError(f"tinyproxy is not installed: {INSTALL}")
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(5):  # a port taken between choosing and binding: another one
        port, log = _free_port(), folder / "tinyproxy.log"
        conf = folder / "tinyproxy.conf"
        conf.write_text("\n".join([
            f"Port {port}", "Listen 127.0.0.1", "Timeout 30", f'LogFile "{log}"',
            "LogLevel Info", "MaxClients 50", "Allow 127.0.0.1", *extra]) + "\n")
        process = subprocess.Popen([binary, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while process.poll() is None and not _listening(port) and time.monotonic() < deadline:
            time.sleep(0.02)
        if process.poll() is None and _listening(port):
            break
        process.kill()
        process.wait()
    else:
        raise AssertionError(f"tinyproxy did not start: {process.stderr.read().decode()[-500:]}"
                             if process.stderr else "tinyproxy did not start")
    try:
        yield Tinyproxy(port, log, process)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
