"""A compiled hook, rendered per event into an HTTP request (compiled by requests.compile)."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from yarl import URL

from hookd import USER_AGENT
from hookd.config import HookConfig, OAuth2Auth
from hookd.errors import RenderError
from hookd.events.decode import Event
from hookd.events.filters import MISSING, Predicate, get_path
from hookd.events.trace import NO_TRACE
from hookd.requests.auth import Headers
from hookd.requests.head import Head, framed
from hookd.requests.proxy import Route
from hookd.requests.signing import Signer, webhook_id
from hookd.requests.target import InvalidTarget, breaks_framing, target_of
from hookd.requests.templates import GLOBALS, Text, tojson
from hookd.requests.urls import Origin, UrlText, origin_of, parse_url

_NO_CONTEXT: dict[str, Any] = {}  # given to fixed texts, which never read it
_new = tuple.__new__  # a Request without its namedtuple `__new__` (a Python function)


@functools.lru_cache(maxsize=4096)
def checked_url(text: str) -> tuple[URL, str]:
    """The URL a template rendered, parsed and checked: what the HTTP client can send to
    (hookd.delivery.wire.target_of decides; its answers are cached, most URLs repeat). Parsed as
    encoded: the template encoded the event's values (hookd.requests.urls)."""
    try:
        url = parse_url(text)
    except ValueError as exc:
        raise RenderError(f"url {text[:200]!r}: {exc}") from None
    url_str = str(url)
    try:
        target_of(url_str)
    except InvalidTarget as exc:
        raise RenderError(f"url is {exc}") from None
    return url, url_str


def _query_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else tojson(value)


class Request(NamedTuple):
    """A rendered request, not yet signed (signing is per attempt: fresh timestamp).
    A named tuple: as immutable as a frozen dataclass, made in a fraction of its time
    (one per delivery)."""

    hook_id: str
    method: str
    url: str
    headers: Headers
    body: bytes
    webhook_id: str
    # the hook's compiled head (None: encode_request frames `headers` per attempt), and
    # `headers` as its lines, framed and checked: all but what each attempt adds
    head: Head | None = None
    text: str = ""

    def signed_headers(self, signer: Signer | None, timestamp: int) -> dict[str, str]:
        headers = dict(self.headers)
        headers["webhook-timestamp"] = str(timestamp)
        if signer is not None:
            headers["webhook-signature"] = signer.signature(self.webhook_id, timestamp, self.body)
        return headers


BodyFn = Callable[[Mapping[str, Any], Mapping[str, Any]], bytes]


@dataclass(frozen=True)
class CompiledHook:
    """A hook with its filter, templates and keys compiled: ready for the hot path."""

    config: HookConfig
    predicate: Predicate
    url: UrlText
    headers: tuple[tuple[str, Text], ...]
    query: tuple[tuple[str, Text], ...]
    body: BodyFn | None
    field_query: bool  # GET with the default body: payload fields go to the query string
    static_headers: Headers
    signer: Signer | None
    timeout: float
    schedule: tuple[float, ...]
    # scheme://host:port whenever the URL's scheme and host are literal (url.target): the
    # Endpoint every request of the hook goes to (through a proxy: `... via PROXY`, its
    # route's key); None when a template writes the host
    endpoint: str | None = None
    tls: ssl.SSLContext | None = None  # from the hook's `tls` section (None: the defaults)
    fixed_url: tuple[URL, str] | None = None  # the URL, parsed at load, when it is fixed
    templated: bool = True  # False: no template reads the context (it is not built)
    # send the event's trace context headers: `trace_context` on, and the hook's own
    # headers set neither traceparent nor tracestate (then the hook's win, whole)
    trace: bool = True
    proxy: Route | None = None  # its proxy and no_proxy (None: always direct)
    head: Head | None = None  # what its requests send the same, framed (requests.head)

    id: str = field(init=False)  # config.id, read several times per delivery
    method: str = field(init=False)
    # a rate limit or an OAuth2 token to wait for before an attempt (decided at load:
    # the others are sent the common way without asking, hookd.delivery.attempts.plain)
    waits: bool = field(init=False)
    _hook: dict[str, Any] = field(init=False, repr=False, compare=False)  # templates' `hook`
    # what follows the hook's own headers in every request: auth, content-type, user-agent
    _fixed_headers: Headers = field(init=False, repr=False, compare=False)
    # headers and query as (name, text, what its RenderError says it is)
    _headers: tuple[tuple[str, Text, str], ...] = field(init=False, repr=False, compare=False)
    _query: tuple[tuple[str, Text, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", self.config.id)
        object.__setattr__(self, "method", self.config.request.method)
        object.__setattr__(self, "waits", self.config.rate_limit is not None
                           or isinstance(self.config.auth, OAuth2Auth))
        object.__setattr__(self, "_fixed_headers", (
            *self.static_headers, ("content-type", self.config.request.content_type),
            ("user-agent", USER_AGENT)))
        object.__setattr__(self, "_headers", tuple((k, t, f"header {k} template")
                                                   for k, t in self.headers))
        object.__setattr__(self, "_query", tuple((k, t, f"query {k} template")
                                                 for k, t in self.query))
        object.__setattr__(self, "_hook", {"id": self.config.id,
                                           "description": self.config.description})
        headed = _headed_render(self)
        if headed is not None:  # the hook's own render, chosen once (see _headed_render)
            object.__setattr__(self, "render", headed)

    def variables(self, event: Event) -> dict[str, Any]:
        """What templates see: the template globals, payload fields at top level, event,
        payload, meta, trace and hook. All but `hook` is built once per event, for all the hooks
        that render it; `hook` is set here (rendering is synchronous: the dict is the
        hook's until its render returns)."""
        ctx = event.context
        if ctx is None:
            ctx = context_of(event)
        ctx["hook"] = self._hook
        return ctx

    def render(self, event: Event) -> Request:
        """Build the request for `event`; RenderError says what went wrong."""
        ctx = self.variables(event) if self.templated else _NO_CONTEXT
        query = [(k, t.render(ctx, what)) for k, t, what in self._query] if self._query else []
        headers = []  # (a loop: cheaper than a comprehension's function for a header or two)
        for name, template, what in self._headers:
            headers.append((name, template.render(ctx, what)))
        if self.fixed_url is not None:
            url, url_str = self.fixed_url
        else:
            url, url_str = checked_url(self.url.render(ctx, "url template").strip())
            if self.url.origin is not None and origin_of(url) != self.url.origin:
                raise RenderError(f"url {url_str[:200]!r}: its scheme or host is not the "
                                  "one the template writes")  # a last check, after encoding
        if self.field_query:
            query += [(k, _query_value(v)) for k, v in select_fields(self.config, event.payload)]
        if query:
            url_str = str(url.extend_query(query))
        own = ""  # the same headers as their lines, framed (for self.head)
        for name, value in headers:
            if breaks_framing(value):
                raise RenderError(f"header {name}: value contains CR, LF or NUL")
            own += f"{name}: {value}\r\n"
        try:
            body = self.body(ctx, event.payload) if self.body is not None else b""
        except (TypeError, ValueError) as exc:  # JSON nested too deep, a lone surrogate...
            raise RenderError(f"body: {type(exc).__name__}: {exc}") from None
        msg_id = webhook_id(event.id, self.id)
        all_headers = (*headers, *self._fixed_headers, ("webhook-id", msg_id))
        trace = event.trace if self.trace else None
        head = self.head
        if head is None:
            if trace is not None:
                all_headers += trace.headers
            return Request(self.id, self.method, url_str, all_headers, body, msg_id)
        # the names and what is fixed were checked at load, the values above; trace
        # headers at decode, by their W3C grammar, which has no CR, LF or NUL
        text = f"{head.start or ''}{own}{head.fixed}{msg_id}\r\n"
        if trace is not None:  # (no trace: no copy, one check)
            all_headers += trace.headers
            for name, value in trace.headers:
                text += f"{name}: {value}\r\n"
        return Request(self.id, self.method, url_str, all_headers, body, msg_id, head, text)


def _headed_render(hook: CompiledHook) -> Callable[[Event], Request] | None:
    """The render of a hook with a compiled head that adds no query per event (most
    hooks), or None (CompiledHook.render then does it all). It does what that render does,
    in the same order, with the same errors, but what the hook's config decides is decided
    here, once: no query, the URL fixed or not, the header texts that have a direct way
    called straight (Text.render's dispatch skipped), the head's fixed parts unpacked, the
    Request made without its namedtuple `__new__`. tests/unit/requests/test_render.py
    compares the two on every hook it compiles."""
    head = hook.head
    if head is None or hook._query or hook.field_query:
        return None
    hook_id, method, hook_vars = hook.id, hook.method, hook._hook
    fixed_headers = hook._fixed_headers
    templated, fixed_url, url_text, body_fn = hook.templated, hook.fixed_url, hook.url, hook.body
    send_trace, start, fixed = hook.trace, head.start or "", head.fixed
    texts = tuple((name, text.direct, text, what) for name, text, what in hook._headers)
    count = len(texts)

    def render(event: Event) -> Request:
        if templated:
            ctx = event.context
            if ctx is None:
                ctx = context_of(event)
            ctx["hook"] = hook_vars
        else:
            ctx = _NO_CONTEXT
        headers = []
        own = ""  # the same headers as their lines (checked below, after the URL, as before)
        for name, direct, template, what in texts:
            if direct is None:
                value = template.render(ctx, what)
            else:
                try:
                    value = direct(ctx)
                except Exception:  # Slow, or any error: Jinja2's to render or to say
                    value = template.jinja(ctx, what)
            headers.append((name, value))
            own += f"{name}: {value}\r\n"
        url_str = fixed_url[1] if fixed_url is not None else _templated_url(url_text, ctx)
        if own and not framed(own, count):
            for name, value in headers:
                if breaks_framing(value):
                    raise RenderError(f"header {name}: value contains CR, LF or NUL")
        try:
            body = body_fn(ctx, event.payload) if body_fn is not None else b""
        except (TypeError, ValueError) as exc:  # JSON nested too deep, a lone surrogate...
            raise RenderError(f"body: {type(exc).__name__}: {exc}") from None
        msg_id = webhook_id(event.id, hook_id)
        all_headers = (*headers, *fixed_headers, ("webhook-id", msg_id))
        text = f"{start}{own}{fixed}{msg_id}\r\n"
        if send_trace:
            trace = event.trace
            if trace is not None:
                all_headers += trace.headers
                for name, value in trace.headers:
                    text += f"{name}: {value}\r\n"
        return _new(Request, (hook_id, method, url_str, all_headers, body, msg_id, head, text))
    return render


def _templated_url(url_text: UrlText, ctx: dict[str, Any]) -> str:
    """A templated URL rendered and checked, as CompiledHook.render does it (no query)."""
    return _checked_in(url_text.render(ctx, "url template").strip(), url_text.origin)


@functools.lru_cache(maxsize=4096)
def _checked_in(text: str, origin: Origin | None) -> str:
    """checked_url's text of `text`, which must keep `origin` (the literal scheme and host
    its template writes): remembered with the answer, most URLs repeat. (A RenderError is
    not remembered: lru_cache keeps only what returns.)"""
    url, url_str = checked_url(text)
    if origin is not None and origin_of(url) != origin:
        raise RenderError(f"url {url_str[:200]!r}: its scheme or host is not the "
                          "one the template writes")  # a last check, after encoding
    return url_str


def context_of(event: Event) -> dict[str, Any]:
    """The event's part of what templates see (CompiledHook.variables), built by the first
    hook that renders it and kept on the event for the others: one dict display (the later
    keys win, in the places `update` would leave them)."""
    payload, trace = event.payload, event.trace
    ctx = {**GLOBALS, **payload, "event": event.name, "payload": payload,
           "meta": event.meta.as_dict(),
           "trace": trace.variables if trace is not None else NO_TRACE}
    object.__setattr__(event, "context", ctx)
    return ctx


def select_fields(hook: HookConfig, payload: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The default body's fields: all, or only `fields`, renamed by `map`; absent ones left out."""
    req = hook.request
    names = req.fields if req.fields is not None else list(payload)
    out = []
    for name in names:
        value = get_path(payload, name)
        if value is not MISSING:
            out.append((req.map.get(name, name), value))
    return out
