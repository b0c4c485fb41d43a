"""Load the whole configuration off to the side: parse, validate, compile — or report all errors."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from hookd.config import Config, HookConfig, HooksFile
from hookd.config.secrets import SecretResolver
from hookd.config.source import Loc, Source, load_yaml_file
from hookd.errors import ConfigError, ConfigIssue
from hookd.events.matching import HookIndex
from hookd.kafka.clients import tls_problem
from hookd.requests.auth import auth_secrets
from hookd.requests.compile import compile_hook, lint_raw_hook
from hookd.requests.proxy import NoProxy, proxy_secrets, route_of
from hookd.requests.render import CompiledHook
from hookd.telemetry.redact import Redactor

DEFAULT_PATH = "/etc/hookd/hookd.yaml"
M = TypeVar("M", bound=BaseModel)


def default_config_path(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get("HOOKD_CONFIG") or DEFAULT_PATH


@dataclass(frozen=True)
class Runtime:
    """One generation of loaded configuration; swapped whole on reload."""

    config: Config
    hooks: tuple[CompiledHook, ...]
    index: HookIndex[CompiledHook]
    secrets: frozenset[str]
    files: tuple[str, ...]
    generation: int = 1
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @functools.cached_property
    def _by_id(self) -> dict[str, CompiledHook]:
        return {h.id: h for h in self.hooks}

    def hook(self, hook_id: str) -> CompiledHook | None:
        """By id (each parked delivery coming back looks its hook up)."""
        return self._by_id.get(hook_id)


def _message(err: Mapping[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    msg = str(err["msg"]).removeprefix("Value error, ")
    given = err.get("input")
    if err["type"].endswith(("_type", "_parsing", "literal_error")) and isinstance(
            given, str | int | float | bool) and len(str(given)) <= 60:
        msg += f", got {given!r}"
    return msg


def _validate(model: type[M], data: Any, source: Source, loc: Loc,
              issues: list[ConfigIssue]) -> M | None:
    """Validate `data` (found at `loc` in `source`) as `model`; errors become located issues."""
    if not isinstance(data, dict):
        issues.append(source.issue(loc, "expected a mapping"))
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            issues.append(source.issue((*loc, *err["loc"]), _message(err)))
        return None


@dataclass(frozen=True)
class _Entry:
    raw: Any
    hook: HookConfig | None  # None: it failed validation
    source: Source
    loc: Loc


def _split_hooks(model: type[M], source: Source, issues: list[ConfigIssue]
                 ) -> tuple[M | None, list[_Entry]]:
    """Validate a file's settings and each of its hooks on its own, so one bad hook hides
    nothing about the others."""
    data = source.data if source.data is not None else {}
    hooks_raw = data.get("hooks", []) if isinstance(data, dict) else []
    rest = {k: v for k, v in data.items() if k != "hooks"} if isinstance(data, dict) else data
    settings = _validate(model, rest, source, (), issues)
    if hooks_raw is None:
        hooks_raw = []
    if not isinstance(hooks_raw, list):
        issues.append(source.issue(("hooks",), "expected a list of hooks"))
        return settings, []
    return settings, [_Entry(raw, _validate(HookConfig, raw, source, ("hooks", i), issues),
                             source, ("hooks", i)) for i, raw in enumerate(hooks_raw)]


def _load_source(path: Path, resolver: SecretResolver,
                 issues: list[ConfigIssue]) -> Source:
    source, parse_issues = load_yaml_file(path)
    issues += parse_issues
    source.data, errors = resolver.walk(source.data)
    issues += [source.issue(e.path, e.message) for e in errors]
    return source


def load_config(path: str | Path, environ: Mapping[str, str] | None = None,
                generation: int = 1) -> Runtime:
    """Everything or nothing: a Runtime, or ConfigError listing every problem found."""
    main = Path(path)
    resolver = SecretResolver(main.parent, dict(os.environ if environ is None else environ))
    issues: list[ConfigIssue] = []
    if not main.is_file():
        raise ConfigError([ConfigIssue(str(main), None, "", "no such file")])
    main_src = _load_source(main, resolver, issues)
    config, located = _split_hooks(Config, main_src, issues)
    files = [str(main)]
    raw = main_src.data if isinstance(main_src.data, dict) else {}
    hooks_dir = config.hooks_dir if config is not None else raw.get("hooks_dir", "hooks.d")
    if isinstance(hooks_dir, str) and hooks_dir:
        folder = main.parent / hooks_dir
        for file in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
            files.append(str(file))
            _, more = _split_hooks(HooksFile, _load_source(file, resolver, issues), issues)
            located += more
    defaults = config or Config()

    compiled: list[CompiledHook] = []
    secrets = set(resolver.found) | proxy_secrets(defaults.delivery.proxy)
    no_proxy = NoProxy(defaults.delivery.no_proxy)
    first_seen: dict[str, str] = {}
    for entry in located:
        src, loc = entry.source, entry.loc
        hook_id = entry.raw.get("id") if isinstance(entry.raw, dict) else None
        if isinstance(hook_id, str):
            if hook_id in first_seen:
                issues.append(src.issue((*loc, "id"), f"duplicate hook id {hook_id!r} "
                                        f"(first at {first_seen[hook_id]})"))
            first_seen.setdefault(hook_id, f"{src.file}:{src.line_of((*loc, 'id'))}")
        if entry.hook is None:
            errors = lint_raw_hook(entry.raw)
        else:
            hook_obj, errors = compile_hook(
                entry.hook, defaults.delivery.timeout, tuple(defaults.delivery.retry.schedule),
                route_of(entry.hook.proxy, defaults.delivery.proxy, no_proxy))
            secrets |= proxy_secrets(entry.hook.proxy)
            if hook_obj is not None:
                compiled.append(hook_obj)
            secrets |= auth_secrets(entry.hook.auth)
            if entry.hook.signing:
                secrets |= set(entry.hook.signing.secret)
        issues += [src.issue((*loc, *e.path), e.message) for e in errors]
    if config is not None and config.kafka.security.password:
        secrets.add(config.kafka.security.password)
    if config is not None and (problem := tls_problem(config.kafka)) is not None:
        issues.append(main_src.issue(("kafka", "security"), problem))

    if issues or config is None:
        # a message may quote a value that came from a secret (not an unresolved reference)
        mask = Redactor(s for s in secrets if "${" not in s)
        raise ConfigError(sorted((replace(i, message=mask(i.message)) for i in issues),
                                 key=lambda i: (i.file != str(main), i.file, i.line or 0)))
    index = HookIndex([(h.config.event, h.predicate, h) for h in compiled if h.config.enabled])
    config = config.model_copy(update={"hooks": [e.hook for e in located]})
    return Runtime(config, tuple(compiled), index, frozenset(s for s in secrets if s),
                   tuple(files), generation)


def tiers_of(runtime: Runtime) -> list[float]:
    """The delays of every schedule in the config that are too long to wait in memory."""
    delivery = runtime.config.delivery
    delays = set(delivery.retry.schedule)
    for hook in runtime.hooks:
        delays.update(hook.schedule)
    tiers = {round(d, 3) for d in delays if d > delivery.retry.inline_max}
    # an open circuit parks whatever the schedules say: there is always a tier for it
    tiers.add(round(delivery.circuit_breaker.cooldown, 3))
    return sorted(tiers)
