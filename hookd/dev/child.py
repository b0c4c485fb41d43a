"""A server of the dev tools (tansu, an Apache Kafka node) as a child process: its output
appended to one log file across restarts, in its own process group (a Ctrl-C at the
terminal reaches the caller only, who stops things in order), and stopped by Linux should
the caller die without cleaning up."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from hookd.dev.process import parent_death_signal


class LoggedChild:
    """One run at a time of a server process whose output goes to ``log_path``."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.log_offset = 0  # where this run's output starts in the log

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log (empty if there is none)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def output(self) -> bytes:
        """What this run has written so far."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self.log_offset)
                return handle.read()
        except OSError:
            return b""

    def spawn(self, argv: Sequence[str], banner: str,
              env: Mapping[str, str] | None = None) -> None:
        """Start a run (a no-op while one is running), ``banner`` first in the log."""
        if self.running:
            return
        self.reap()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in reap()
        self._log.write(f"\n=== {banner} at {time.ctime()} ===\n".encode())
        self._log.flush()
        self.log_offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None, start_new_session=True,
            preexec_fn=parent_death_signal())

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL (a crash), waited for."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reap()

    def terminate(self, timeout: float) -> bool:
        """SIGTERM, SIGKILL after ``timeout``; True if it had to be SIGKILLed."""
        proc, killed = self.proc, False
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                killed = True
        self.reap()
        return killed

    def reap(self) -> None:
        """Forget a run that has ended; close the log once nothing writes to it."""
        if self.proc is not None and self.proc.poll() is not None:
            self.proc = None
        if self.proc is None and self._log is not None:
            self._log.close()
            self._log = None
