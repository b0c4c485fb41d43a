"""URL templates, encoded like HTML autoescaping: every `{{ ... }}` is percent-encoded
for the part of the URL it lands in, the operator's literal text is left as written.

- authority (scheme, host, port): everything but `:`, `[` and `]` is encoded (`/`, `@`,
  `?`, `#` cannot start a path or userinfo); the SSRF guard judges the host;
- path: one segment (`/ ? # % & ;` and the rest encoded); a value made only of dots
  (`.`, `..`) has them encoded (`%2E`) so it is never a dot segment;
- query and fragment: one value (`& = # + %` and spaces encoded; `/ ? : @` kept).

Where a value lands is decided on the text actually rendered before it (literal text and
`|url_raw` values), so `{% if %}` branches are placed right. `|url_raw`, as the last filter,
is the opt-out: the value is trusted URL syntax (a base URL from config) and is not
encoded. The rendered text is parsed with :func:`parse_url`, which does not decode `%2E`
nor remove dot segments (yarl's default parse does both).
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import jinja2
from jinja2 import nodes, pass_context
from jinja2.runtime import Context
from yarl import URL

from hookd.errors import RenderError, SpecError
from hookd.requests.direct import Plan, Slow, plan, text_renderer
from hookd.requests.target import Target, target_of
from hookd.requests.templates import make_environment
from hookd.telemetry.redact import QUERY_SAFE

_AUTHORITY_SAFE = ":[]"  # a templated host may carry a port or an IPv6 literal
_LITERAL_SAFE = "!#$%&'()*+,/:;=?@[]~"  # what the operator wrote is requoted, never decoded
_SCHEME = r"[A-Za-z][A-Za-z0-9+.-]*:"
_PATH_BEGUN = re.compile(rf"{_SCHEME}//[^/?#]*/")
_ORIGIN = re.compile(rf"({_SCHEME}//[^/?#]*)(.*)", re.DOTALL)
_HOST = re.compile(r"[A-Za-z0-9._-]*")  # after IDNA; an IPv6 literal is checked by yarl
_FIXED_ORIGIN = re.compile(rf"({_SCHEME}//[^/?#]*)[/?#]")  # templated text may follow
_CONST_ORIGIN = re.compile(rf"({_SCHEME}//[^/?#]*)")  # the whole URL is literal text
_OUT = re.compile("\x00([0-9]+)\x01")  # where the n-th `{{ }}` output stands, while rendering
_JINJA_SYNTAX = re.compile(r"\{\{|\{%|\{#|\r")
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")  # never encoded: the common value is returned
_URL_CHARS = re.compile(r"[A-Za-z0-9_.~!#$%&'()*+,/:;=?@\[\]-]*")  # needs no requoting
# `${field}` is raw_body's substitution; in a URL it would go out as text
_LEGACY = re.compile(r"\$\{(?!(?:env|file|cred):)\s*([^}]*?)\s*\}")


class Part(enum.Enum):
    AUTHORITY = "authority"
    PATH = "path"
    QUERY = "query"
    FRAGMENT = "fragment"


def part_at(prefix: str) -> Part:
    """The part of the URL that text appended to `prefix` lands in."""
    if "#" in prefix:
        return Part.FRAGMENT
    if "?" in prefix:
        return Part.QUERY
    return Part.PATH if _PATH_BEGUN.match(prefix.lstrip()) else Part.AUTHORITY


def encode_value(text: str, part: Part) -> str:
    """`text` percent-encoded (UTF-8) so that it is data, not syntax, in `part`."""
    if part is Part.PATH and text and not text.strip("."):
        return "%2E" * len(text)
    if _UNRESERVED.fullmatch(text):
        return text
    if part is Part.PATH:
        return quote(text, safe="")
    return quote(text, safe=_AUTHORITY_SAFE if part is Part.AUTHORITY else QUERY_SAFE)


class RawUrl(str):
    """A value `|url_raw` marked as trusted URL syntax: not encoded."""

    __slots__ = ()


def url_raw(value: Any) -> RawUrl:
    return RawUrl(value if isinstance(value, str) else str(value))


class _UrlContext(Context):
    """A render's context, which also collects every `{{ }}` output (text, trusted)."""

    outputs: list[tuple[str, bool]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outputs = []


@pass_context
def _finalize(context: _UrlContext, value: Any) -> str:
    """Every output is replaced by a marker, filled in once the text around it is known."""
    text = value if isinstance(value, str) else str(value)  # Undefined raises here
    context.outputs.append((text, isinstance(value, RawUrl)))
    return f"\x00{len(context.outputs) - 1}\x01"


URL_ENV = make_environment(finalize=_finalize)
URL_ENV.filters["url_raw"] = url_raw
URL_ENV.context_class = _UrlContext


def _output(index: int, outputs: Sequence[tuple[str, bool]]) -> tuple[str, bool]:
    """The n-th output; outputs captured in it (`{% set %}` blocks, macros) put back raw,
    to be encoded once, with it."""
    text, trusted = outputs[index]
    if "\x00" in text:  # rare: checked before the regex runs
        text = _OUT.sub(lambda m: _output(int(m.group(1)), outputs)[0]
                        if int(m.group(1)) < index else "", text)
    return text, trusted


@functools.lru_cache(maxsize=4096)
def _parts(literals: tuple[str, ...]) -> tuple[Part, ...]:
    """The part each output lands in when only literal text stands before it: the same
    for every render of a template without `{% if %}` (so it is remembered)."""
    parts, text = [], ""
    for literal in literals[:-1]:
        text += literal
        parts.append(part_at(text))
    return tuple(parts)


def fill(rendered: str, outputs: Sequence[tuple[str, bool]]) -> str:
    """The rendered text with each output encoded for the part of the URL it stands in."""
    pieces = _OUT.split(rendered)  # literal, index, literal, index, ..., literal
    if not any(trusted for _, trusted in outputs):  # the parts follow from the literals
        parts = _parts(tuple(pieces[0::2]))
        for k in range(1, len(pieces), 2):
            pieces[k] = encode_value(_output(int(pieces[k]), outputs)[0], parts[k >> 1])
        return "".join(pieces)
    part = part_at(pieces[0])  # a trusted value may hold `/`, `?`, `#`: look at the text
    for k in range(1, len(pieces), 2):
        text, trusted = _output(int(pieces[k]), outputs)
        pieces[k] = text if trusted else encode_value(text, part)
        if part is not Part.FRAGMENT and (trusted or pieces[k + 1]):
            part = part_at("".join(pieces[:k + 2]))
    return "".join(pieces)


def parse_url(text: str) -> URL:
    """The URL of rendered text: scheme and host normalised by yarl (case, IDNA, port
    range); path, query and fragment kept as written, only characters that may not stand
    in a URL (spaces, non-ASCII) percent-encoded. ValueError if it does not parse."""
    m = _ORIGIN.fullmatch(text)
    if m is None:  # not absolute: hookd.delivery.wire.target_of says so
        return URL(_requote(text), encoded=True)
    return URL(_origin(m.group(1)) + _requote(m.group(2)), encoded=True)


@functools.lru_cache(maxsize=4096)
def _origin(text: str) -> str:
    origin = URL(text)
    host = origin.raw_host or ""
    if ":" not in host and not _HOST.fullmatch(host):  # e.g. `%2F` from an encoded value
        raise ValueError(f"host {host[:100]!r} is not a host name")
    return str(origin)


def _requote(text: str) -> str:
    return text if _URL_CHARS.fullmatch(text) else quote(text, safe=_LITERAL_SAFE)


Origin = tuple[str, str, int | None]


def origin_of(url: URL) -> Origin:
    return (url.scheme, url.raw_host or "", url.port)


def _literal_origin(source: str) -> URL | None:
    """`scheme://host[:port]` of a url template when it is literal text (then no event
    can change it), parsed; None when a template writes any part of it."""
    syntax = _JINJA_SYNTAX.search(source)
    if syntax is None:
        m = _CONST_ORIGIN.match(source.strip())
    else:  # the origin must end before the first template, or a value could extend it
        m = _FIXED_ORIGIN.match(source[:syntax.start()].lstrip())
    if m is None:
        return None
    try:
        return parse_url(m.group(1))
    except ValueError:
        return None


def fixed_origin(source: str) -> Origin | None:
    """Scheme, host and port when the template writes them as literal text; None when
    any of them is templated."""
    url = _literal_origin(source)
    return None if url is None else origin_of(url)


def origin_target(source: str) -> Target | None:
    """The target of the origin every URL of this template goes to, whenever its scheme
    and host (and port, if written) are literal text, whatever the path and query: its
    `endpoint` (`scheme://host:port`, the port defaulted per scheme) is the key of the
    Endpoint (circuit, slots) its requests use. None when a template writes the scheme,
    host or port, or the literal origin is no http(s) origin hookd can send to. The one
    place a hook's endpoint is worked out: compile, status, metrics and `check --connect`
    read it off the compiled hook."""
    url = _literal_origin(source)
    if url is None:
        return None
    try:
        return target_of(str(url))
    except ValueError:  # InvalidTarget: not http(s), a non-canonical IPv4 host
        return None


def _direct(found: Plan | None) -> Callable[[Mapping[str, Any]], str] | None:
    """A url's plan (hookd.requests.direct) as one render function: each output as
    `_finalize` takes it, encoded as `fill` encodes it when no output is trusted (the parts
    follow from the literals, worked out here once). A `|url_raw` value is never planned
    (its filter is not in the plan's list); a value holding NUL, which `fill` would read as
    a marker, is left to Jinja2 (Slow)."""
    if found is None or not found.outputs:
        return None
    parts = _parts(found.literals)

    def finish(local: str, index: int) -> list[str]:
        return [f"if {local}.__class__ is not str: {local} = _text({local})",
                f"if '\\x00' in {local}: raise Slow",
                f"{local} = _encode({local}, _part{index})"]
    return text_renderer(found, finish, {"str": str, "_text": _text, "_encode": encode_value,
                                         **{f"_part{i}": part for i, part in enumerate(parts)}})


def _text(value: Any) -> str:
    """An output that is not an exact str, as `_finalize` takes it: a RawUrl or Markup is
    fill's to place (Jinja2's way), anything else its `str`."""
    if isinstance(value, str):
        raise Slow
    return str(value)


class UrlText:
    """A hook's compiled `url` template."""

    __slots__ = ("const", "direct", "origin", "raw", "source", "target", "template")

    def __init__(self, source: str, template: jinja2.Template) -> None:
        self.source = source
        self.template = template
        self.const: str | None = None if _JINJA_SYNTAX.search(source) else source
        self.origin = fixed_origin(source)
        self.target = origin_target(source)  # its endpoint, when scheme and host are literal
        self.raw = any(f.name == "url_raw"  # `hookd check` lists the hooks that opt out
                       for f in URL_ENV.parse(source).find_all(nodes.Filter))
        self.direct = _direct(plan(URL_ENV, source)) if self.const is None else None

    def render(self, variables: dict[str, Any], what: str) -> str:
        """The URL as text, every output encoded; RenderError says what went wrong."""
        if self.const is not None:
            return self.const
        if self.direct is not None:
            try:
                return self.direct(variables)
            except Exception:  # Slow, or any error: Jinja2 renders it, or says what it is
                pass
        template = self.template
        ctx = _UrlContext(URL_ENV, variables, template.name, template.blocks)
        try:
            return fill(URL_ENV.concat(template.root_render_func(ctx)), ctx.outputs)
        except jinja2.TemplateError as exc:
            raise RenderError(f"{what}: {exc}") from None
        except Exception as exc:
            raise RenderError(f"{what}: {exc.__class__.__name__}: {exc}") from None


def compile_url(text: str, loc: tuple[str | int, ...]) -> UrlText:
    """SpecError for a syntax error, a `${field}` (not substituted here) or NUL/SOH
    characters (which mark outputs while rendering)."""
    if "\x00" in text or "\x01" in text:
        raise SpecError("url contains a NUL or SOH character", loc)
    legacy = _LEGACY.search(text)
    if legacy is not None:
        name = legacy.group(1) or "field"
        raise SpecError(f"{legacy.group(0)} is not substituted in a url (only in raw_body); "
                        f"write {{{{ {name} }}}}, encoded for where it stands", loc)
    try:
        return UrlText(text, URL_ENV.from_string(text))
    except jinja2.TemplateSyntaxError as exc:
        where = f" (template line {exc.lineno})" if text.count("\n") else ""
        raise SpecError(f"template syntax: {exc.message}{where}", loc) from None

