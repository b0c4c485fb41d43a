"""Java for Apache Kafka: where it is, and whether it is new enough (17+ for Kafka 4)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from hookd.dev.kafkajars import KAFKA_VERSION


def java_binary() -> str:
    """``$JAVA_HOME/bin/java``, else ``java`` on PATH (FileNotFoundError if neither)."""
    if home := os.environ.get("JAVA_HOME"):
        candidate = Path(home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    if found := shutil.which("java"):
        return found
    raise FileNotFoundError(
        "Java 17 or newer is needed to run Apache Kafka for the tests (Debian: apt-get "
        "install openjdk-17-jre-headless), or run them on the demo broker: make test "
        "BROKER=tansu")


def java_problem() -> str | None:
    """Why Apache Kafka cannot run here (no Java, or one older than 17), or None."""
    try:
        java = java_binary()
    except FileNotFoundError as exc:
        return str(exc)
    done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    words = (done.stderr + done.stdout).split('"')
    version = words[1] if len(words) > 1 else "?"
    major = version.split(".")[0]
    if not major.isdigit() or int(major) < 17:
        return (f"Apache Kafka {KAFKA_VERSION} needs Java 17 or newer; {java} is {version!r} "
                "(set JAVA_HOME to a newer one), or run on the demo broker: make test "
                "BROKER=tansu")
    return None
