"""Compiling a hook once at load: its templates (url, headers, query, body), auth headers,
TLS context and signer, with every problem as a SpecError at its config path."""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from typing import Any

import orjson

from hookd.config import ApiKeyAuth, HookConfig
from hookd.errors import RenderError, SpecError
from hookd.events.filters import MISSING, Predicate, compile_filter, get_path
from hookd.requests.auth import static_auth_headers
from hookd.requests.head import TRACE_HEADERS, compile_head
from hookd.requests.proxy import Route
from hookd.requests.render import BodyFn, CompiledHook, checked_url, select_fields
from hookd.requests.signing import Signer
from hookd.requests.target import breaks_framing, target_of, tls_context
from hookd.requests.templates import Text, compile_template, tojson
from hookd.requests.urls import UrlText, compile_url

_RESERVED_HEADERS = {"content-type", "user-agent", "webhook-id", "webhook-timestamp",
                     "webhook-signature", "content-length", "host"}
_PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _template_body(template: Text, as_json: bool) -> BodyFn:
    direct = template.direct  # called straight, as Text.render would call it

    def render(ctx: Mapping[str, Any], payload: Mapping[str, Any]) -> bytes:
        if direct is None:
            text = template.render(ctx, "body template")  # type: ignore[arg-type]
        else:
            try:
                text = direct(ctx)
            except Exception:  # Slow, or any error: Jinja2's to render or to say
                text = template.jinja(ctx, "body template")  # type: ignore[arg-type]
        data = text.encode()
        if as_json:
            try:
                orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise RenderError(f"body is not valid JSON: {exc}") from None
        return data
    return render


def _raw_body(text: str, as_json: bool) -> BodyFn:
    """The oldest systems' `${field}` placeholders; inside JSON, strings are escaped.
    The text is split once, at load, into literal parts and field paths."""
    parts = _PLACEHOLDER.split(text)  # literal, path, literal, path, ..., literal
    head = parts[0]
    # (path, a top-level key: no dot, so get_path of a dict is its `get`, literal after)
    steps = tuple((path, "." not in path, literal) for path, literal in
                  zip([p.strip() for p in parts[1::2]], parts[2::2], strict=True))

    def render(ctx: Mapping[str, Any], payload: Mapping[str, Any]) -> bytes:
        out = head
        plain = payload.__class__ is dict
        for path, top, literal in steps:
            found = payload.get(path, MISSING) if top and plain else get_path(payload, path)
            if found is MISSING:
                raise RenderError(f"raw_body: no field {path!r} in the event")
            if found.__class__ is str:  # tojson's text without its call (a str needs no
                # `default`; a lone surrogate raises the same error)
                out += orjson.dumps(found)[1:-1].decode() if as_json else found
            elif isinstance(found, str):
                out += tojson(found)[1:-1] if as_json else found
            else:
                out += tojson(found)
            out += literal
        return out.encode()
    return render


def _fields_body(hook: HookConfig) -> BodyFn:
    if hook.request.fields is None and not hook.request.map:
        def whole(ctx: Mapping[str, Any], payload: Mapping[str, Any]) -> bytes:
            return orjson.dumps(payload, default=str)  # = every field, as they are
        return whole

    def render(ctx: Mapping[str, Any], payload: Mapping[str, Any]) -> bytes:
        return orjson.dumps(dict(select_fields(hook, payload)), default=str)
    return render


def compile_hook(hook: HookConfig, default_timeout: float, default_schedule: tuple[float, ...],
                 proxy: Route | None = None) -> tuple[CompiledHook | None, list[SpecError]]:
    """Compile every template and the filter; collect all errors (locations relative to hook).
    `proxy`: the hook's route (hookd.requests.proxy.route_of), None when it goes direct."""
    errors: list[SpecError] = []
    req = hook.request

    def attempt(loc: tuple[str | int, ...], text: str) -> Text | None:
        try:
            return Text(text, compile_template(text, loc))
        except SpecError as exc:
            errors.append(exc)
            return None

    url: UrlText | None = None
    try:
        url = compile_url(req.url, ("request", "url"))
    except SpecError as exc:
        errors.append(exc)
    headers = [(k.lower(), attempt(("request", "headers", k), v)) for k, v in req.headers.items()]
    query = [(k, attempt(("request", "query", k), v)) for k, v in req.query.items()]
    errors += _reserved_header_errors(req.headers, hook.auth.header
                                      if isinstance(hook.auth, ApiKeyAuth) else None)
    static_headers = static_auth_headers(hook.auth)
    for name, value in static_headers:
        for given in req.headers:
            if given.lower() == name.lower():
                errors.append(SpecError(f"header {given} is also set by auth; keep one",
                                        ("request", "headers", given)))
        if breaks_framing(value):
            errors.append(SpecError("auth value contains CR, LF or NUL", ("auth",)))
    fixed_url = None  # known at load when the URL has no template syntax
    if url is not None and url.const is not None:
        try:
            fixed_url = checked_url(url.const.strip())
        except RenderError as exc:  # every event would fail the same way: say so now
            errors.append(SpecError(str(exc), ("request", "url")))
    texts = [url, *(t for _, t in headers), *(t for _, t in query)]
    templated = req.body is not None or any(t is not None and t.const is None for t in texts)
    tls = None
    if hook.tls is not None:  # files read once per load: a reload picks up rotated ones
        try:
            tls = tls_context(hook.tls.verify, hook.tls.ca_file, hook.tls.cert_file,
                              hook.tls.key_file)
        except (OSError, ssl.SSLError) as exc:
            errors.append(SpecError(f"cannot use the TLS files: {exc}", ("tls",)))
    predicate: Predicate | None = None
    try:
        predicate = compile_filter(hook.filter)
    except SpecError as exc:
        errors.append(SpecError(exc.message, ("filter", *exc.path)))
    as_json = _is_json(req.content_type)
    body: BodyFn | None = None
    if req.body is not None:
        tmpl = attempt(("request", "body"), req.body)
        body = _template_body(tmpl, as_json) if tmpl is not None else None
    elif req.raw_body is not None:
        body = _raw_body(req.raw_body, as_json)
    elif req.method != "GET":
        body = _fields_body(hook)
    if errors or url is None or predicate is None:
        return None, errors
    endpoint = url.target.endpoint if url.target is not None else None
    if proxy is not None and url.target is not None:
        via = proxy.via(url.target)
        endpoint = via[0] if via is not None else endpoint
    field_query = req.method == "GET" and (req.fields is not None or bool(req.map)
                                           or not (req.query or req.body or req.raw_body))
    own = tuple((k, t) for k, t in headers if t is not None)
    # the event's trace headers: sent unless the hook sets either (then the hook's win)
    trace = hook.trace_context and not any(name in TRACE_HEADERS for name, _ in headers)
    # the request line is the same for every event when no query is added per event
    target = (target_of(fixed_url[1]) if fixed_url is not None and not req.query
              and not field_query else None)
    return CompiledHook(
        config=hook, predicate=predicate, url=url,
        headers=own,
        query=tuple((k, t) for k, t in query if t is not None),
        body=body,
        field_query=field_query,
        static_headers=static_headers,
        signer=Signer.from_secrets(hook.signing.secret) if hook.signing else None,
        timeout=req.timeout if req.timeout is not None else default_timeout,
        schedule=tuple(hook.retry.schedule) if hook.retry else default_schedule,
        endpoint=endpoint,
        tls=tls,
        fixed_url=fixed_url,
        templated=templated,
        trace=trace,
        proxy=proxy,
        head=compile_head(req.method, target, tuple(k for k, _ in own), static_headers,
                          req.content_type, trace),
    ), []


def _reserved_header_errors(headers: Mapping[Any, Any], api_key_header: Any) -> list[SpecError]:
    """Headers hookd sets itself may not be set by a hook (nor named by an api_key auth)."""
    errors = [SpecError(f"header {name} is set by hookd (use content_type for content-type)",
                        ("request", "headers", name))
              for name in headers if isinstance(name, str) and name.lower() in _RESERVED_HEADERS]
    if isinstance(api_key_header, str) and api_key_header.lower() in _RESERVED_HEADERS:
        errors.append(SpecError(f"header {api_key_header} is set by hookd",
                                ("auth", "header")))
    return errors


def lint_raw_hook(raw: Any) -> list[SpecError]:
    """Template and filter errors of a hook that failed validation, so they show at once too."""
    errors: list[SpecError] = []
    if not isinstance(raw, dict):
        return errors
    req = raw.get("request")
    if isinstance(req, dict):
        if isinstance(req.get("url"), str):
            try:
                compile_url(req["url"], ("request", "url"))
            except SpecError as exc:
                errors.append(exc)
        texts: list[tuple[tuple[str | int, ...], Any]] = [
            (("request", "body"), req["body"])] if "body" in req else []
        for group in ("headers", "query"):
            if isinstance(req.get(group), dict):
                texts += [(("request", group, k), v) for k, v in req[group].items()]
        for loc, text in texts:
            if isinstance(text, str):
                try:
                    compile_template(text, loc)
                except SpecError as exc:
                    errors.append(exc)
    auth = raw.get("auth")
    headers = req.get("headers") if isinstance(req, dict) else None
    errors += _reserved_header_errors(headers if isinstance(headers, dict) else {},
                                      auth.get("header") if isinstance(auth, dict) else None)
    if isinstance(raw.get("filter"), dict):
        try:
            compile_filter(raw["filter"])
        except SpecError as exc:
            errors.append(SpecError(exc.message, ("filter", *exc.path)))
    return errors
