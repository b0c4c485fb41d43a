"""Shared helpers for the unit tests: config trees written into tmp_path, loaded for errors."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvloop

from hookd.errors import ConfigError, ConfigIssue
from hookd.pipeline.runtime import load_config

# The daemon runs on uvloop, whose transports differ from asyncio's: the HTTP client's
# tests run on both loops, every other test on asyncio's.
BOTH_LOOPS = ("test_client.py", "test_endpoint_faults.py", "test_proxy.py")


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item,
                                  ) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    if item.path.name in BOTH_LOOPS:
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


REPO = Path(__file__).resolve().parents[2]
SAMPLE_CONFIG = REPO / "config" / "hookd.yaml"
EXAMPLES = REPO / "config" / "examples"
SECRETS = REPO / "config" / "secrets"


@dataclass(frozen=True)
class ConfigTree:
    """A config written into a temporary directory: `main` plus `hooks.d/*` files."""

    root: Path
    main: Path

    def path(self, name: str) -> str:
        """The path of a file of the tree as the loader reports it (`hooks.d/10-a.yaml`)."""
        return str(self.root / name)

    def issues(self, environ: Mapping[str, str] | None = None) -> list[ConfigIssue]:
        """Load the tree, expecting it to be invalid; every issue, in reported order."""
        with pytest.raises(ConfigError) as caught:
            load_config(self.main, environ={} if environ is None else environ)
        assert caught.value.issues, "ConfigError without issues"
        return caught.value.issues


WriteConfig = Callable[..., ConfigTree]


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """`write_config(main_yaml, {"10-a.yaml": hooks_yaml}, extra={"secrets/k": "..."})`.

    Every text is dedented and a leading newline dropped, so line 1 of a file is the first
    line written in the test. Files in `hooks_d` go to `hooks.d/`; `extra` files anywhere
    under the root (secrets, credentials). Returns the tree; `tree.main` is the main file.
    """

    def write(main: str, hooks_d: Mapping[str, str] | None = None, *,
              extra: Mapping[str, str | bytes] | None = None,
              main_name: str = "hookd.yaml") -> ConfigTree:
        main_path = tmp_path / main_name
        main_path.write_text(dedent(main), encoding="utf-8")
        if hooks_d is not None:
            (tmp_path / "hooks.d").mkdir(exist_ok=True)
            for name, text in hooks_d.items():
                (tmp_path / "hooks.d" / name).write_text(dedent(text), encoding="utf-8")
        for name, content in (extra or {}).items():
            target = tmp_path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        return ConfigTree(tmp_path, main_path)

    return write
