"""docs/configuration.md: generated from the config model, and kept so.

The page is what `hookd schema config --markdown` writes (hookd.config.reference); a test
here fails when the committed page differs, and others hold the page to the model (every
setting there, each described) and its "applied on" column to what a reload does."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from hookd.cli import main
from hookd.config import BreakerConfig, Config, DeliveryConfig, RetryConfig
from hookd.config.reference import (
    COMMAND,
    RELOAD,
    RESTART,
    RESTART_ONLY,
    applied_on,
    markdown,
    sections,
)
from hookd.delivery.sender import HttpSender

PAGE = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def test_configuration_page_is_current() -> None:
    """Fails when a setting, default or docstring changed and the page was not written
    again: run the command the message gives, and commit the page."""
    written = markdown()
    committed = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
    if committed != written:
        diff = "".join(list(difflib.unified_diff(
            committed.splitlines(keepends=True), written.splitlines(keepends=True),
            "docs/configuration.md (committed)", "hookd schema config --markdown"))[:60])
        pytest.fail(f"docs/configuration.md is stale: run `{COMMAND}` and commit it\n{diff}")


def test_the_command_prints_the_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "config", "--markdown"]) == 0
    assert capsys.readouterr().out == markdown()


def test_schema_config_is_still_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "config"]) == 0
    assert capsys.readouterr().out.lstrip().startswith("{")


def _leaves(model: type[BaseModel], path: str = "") -> set[str]:
    """Every setting's dotted path, walking the model on its own (not the generator)."""
    found = set()
    for name, field in model.model_fields.items():
        where = f"{path}.{name}" if path else name
        subs = _models(field.annotation)
        if not subs:
            found.add(where)
            continue
        if str(field.annotation).startswith("list["):
            where += "[]"
        elif len(subs) > 1:
            found.add(where)  # a union chosen by `type`: a row of its own
        for sub in subs:
            found |= _leaves(sub, where)
    return found


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The models a field's type holds, however deep (Optional, Annotated, a union, a list)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", None) or ():
        found += [m for m in _models(arg) if m not in found]
    return found


def test_every_setting_is_on_the_page_once_and_described() -> None:
    rows = [s for section in sections() for s in section.settings]
    paths = [s.path for s in rows]
    assert sorted(set(paths)) == sorted(_leaves(Config))
    # a union's members share their path (hooks[].auth.type is in each); the rest is unique
    shared = {p for p in paths if paths.count(p) > 1}
    assert all(p.startswith("hooks[].auth.") for p in shared), shared
    undescribed = [s.path for s in rows if not s.description]
    assert undescribed == [], "give these fields a docstring in hookd/config/"


def test_page_rows_read_as_an_operator_writes_them() -> None:
    rows = {s.path: s for section in sections() for s in section.settings}
    assert (rows["shutdown_timeout"].type, rows["shutdown_timeout"].default) == (
        "duration", "`20s`")
    assert rows["delivery.retry.schedule"].default == (
        "`[5s, 5m, 30m, 2h, 5h, 10h, 14h, 20h, 1d]`")
    assert rows["kafka.bootstrap_servers"].type == "string or list of strings, at least one"
    assert rows["hooks[].id"].default == "required"
    assert rows["hooks[].request.url"].default == "required"
    assert rows["health.listen"].type == "HOST:PORT"
    assert rows["delivery.max_in_flight"].type == "integer, ≥ 1"


def test_applied_on() -> None:
    assert applied_on("kafka.consumer.session_timeout") == RESTART
    assert applied_on("health.metrics.enabled") == RESTART
    assert applied_on("logging.level") == RESTART
    assert applied_on("delivery.circuit_breaker.cooldown") == RESTART
    assert applied_on("delivery.max_in_flight") == RESTART
    assert applied_on("delivery.timeout") == RELOAD
    assert applied_on("delivery.retry.schedule") == RELOAD
    assert applied_on("hooks[].request.url") == RELOAD
    assert applied_on("shutdown_timeout") == RELOAD


CHANGED: dict[str, Any] = {
    "timeout": 11.0, "max_in_flight": 513, "per_endpoint_in_flight": 65, "stall_after": 2.0,
    "retry": RetryConfig(jitter=0.3), "circuit_breaker": BreakerConfig(failures=6),
    "allow_networks": ["10.0.0.0/8"], "max_response_bytes": 1024,
    "proxy": "http://proxy.example:3128", "no_proxy": ["example.com"],
}


async def test_restart_only_delivery_settings_are_the_senders() -> None:
    """The page's restart-only delivery settings are those a reload cannot apply: the ones
    HttpSender.reconfigure names in its warning."""
    assert set(CHANGED) == set(DeliveryConfig.model_fields)
    later = set()
    for name, value in CHANGED.items():
        sender = HttpSender(DeliveryConfig())
        try:
            later |= set(await sender.reconfigure(DeliveryConfig().model_copy(
                update={name: value})))
        finally:
            await sender.close()
    assert {f"delivery.{n}" for n in later} == {p for p in RESTART_ONLY
                                                  if p.startswith("delivery.")}
