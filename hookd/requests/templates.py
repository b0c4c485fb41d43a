"""The Jinja2 sandbox every hook template is compiled in, and a compiled template (`Text`)
that renders the simple shapes without Jinja2 (hookd.requests.direct)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jinja2
import orjson
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from hookd.errors import RenderError, SpecError
from hookd.requests.direct import DICT_ATTRIBUTES, plan, text_renderer

_MAX_REPEAT = 1_000_000  # items or characters a `*` in a template may build
_MAX_POWER_BITS = 100_000  # size of an integer a `**` in a template may build


def _json_default(value: Any) -> str:
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined (every hookd sandbox's) raises, saying what is undefined
        raise jinja2.UndefinedError("undefined value")  # a lenient Undefined: an error all the same
    return str(value)


def tojson(value: Any) -> str:
    try:
        return orjson.dumps(value, _json_default).decode()  # (`default`, passed by position)
    except orjson.JSONEncodeError as exc:
        if isinstance(exc.__cause__, jinja2.UndefinedError):
            raise exc.__cause__ from None
        raise


# what the direct way (hookd.requests.direct) writes instead of a call of tojson: the same
# orjson call, inline; an error there is rendered again by Jinja2, with this filter
tojson.dumps = (orjson.dumps, _json_default)  # type: ignore[attr-defined]


class _Sandbox(ImmutableSandboxedEnvironment):
    """Also refuses `*` and `**` that would build huge strings, lists or integers (the sandbox
    already caps `range`): a template must not be able to exhaust the daemon's memory."""

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`meta.key`, `payload.field`: on a plain dict, whose instances have no attribute
        but the type's, the item straight away. Jinja2 would try the attribute first and
        catch its AttributeError (~1 µs a time); the result is the same."""
        if obj.__class__ is dict and attribute not in DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (isinstance(seq, str | list | tuple) and isinstance(times, int)
                        and len(seq) * times > _MAX_REPEAT):
                    raise SecurityError(f"'*' would build more than {_MAX_REPEAT} items")
        elif (operator == "**" and isinstance(left, int) and isinstance(right, int)
              and abs(left) > 1 and right > 0
              and abs(left).bit_length() * right > _MAX_POWER_BITS):
            raise SecurityError("'**' result is too large")
        return super().call_binop(context, operator, left, right)


def make_environment(finalize: Callable[..., Any] | None = None
                     ) -> ImmutableSandboxedEnvironment:
    """The sandbox templates are compiled in: no attribute escapes, no mutation. URL
    templates get their own (hookd.requests.urls), whose `finalize` sees every output."""
    env = _Sandbox(undefined=jinja2.StrictUndefined, autoescape=False,
                   keep_trailing_newline=True, finalize=finalize)
    env.filters["tojson"] = tojson
    return env


def check_jinja2(env: Any) -> None:
    """`Text.render` and `hookd.requests.urls` call a compiled template's `root_render_func`
    (Template.render without its per-call set-up; not documented by Jinja2, hence
    pyproject's jinja2<3.2). Checked at import: a Jinja2 without it fails here, loudly,
    not at the first delivery."""
    probe = env.from_string("{{ x }}")
    root = getattr(probe, "root_render_func", None)
    try:
        ok = callable(root) and env.concat(
            root(env.context_class(env, {"x": "ok"}, probe.name, probe.blocks))) == "ok"
    except Exception:  # (what it raises is Jinja2's to say; the message below is ours)
        ok = False
    if not ok:
        raise ImportError(f"hookd renders through Jinja2's Template.root_render_func, which "
                          f"Jinja2 {jinja2.__version__} does not have as hookd uses it: "
                          f"install jinja2>=3.1,<3.2 (pyproject.toml)")


ENV = make_environment()
check_jinja2(ENV)
GLOBALS: dict[str, Any] = dict(ENV.globals)  # range, dict, namespace…: visible to templates


class Text:
    """One compiled template of a hook (url, header, query value or body).

    Rendering is on the hot path, so the simple shapes skip Jinja2: text without outputs
    is rendered once, at load; a template of names, constant-key lookups and a few filters
    renders through its plan (hookd.requests.direct), which gives way to Jinja2 whenever
    it cannot say what Jinja2 would (a missing field: the error is Jinja2's); anything
    else runs the compiled Jinja2 code directly on a context built once per request
    (`Template.render` would copy the variables twice and walk the globals per template).
    The output is what `Template.render` gives, character for character.
    """

    __slots__ = ("const", "direct", "source", "template")

    def __init__(self, source: str, template: jinja2.Template) -> None:
        self.source = source
        self.template = template
        found = plan(ENV, source)
        self.const: str | None = (found.literals[0] if found is not None and not found.outputs
                                  else None)
        self.direct = (text_renderer(found) if found is not None and found.outputs
                       else None)

    def render(self, variables: dict[str, Any], what: str) -> str:
        """`variables` from :meth:`CompiledHook.variables` (globals included); it is not
        modified. RenderError says what went wrong."""
        if self.const is not None:
            return self.const
        if self.direct is not None:
            try:
                return self.direct(variables)
            except Exception:  # Slow, or any error: Jinja2 renders it, or says what it is
                pass
        return self.jinja(variables, what)

    def jinja(self, variables: dict[str, Any], what: str) -> str:
        """The Jinja2 way alone: where the direct one gave way (or there is none)."""
        template = self.template
        ctx = ENV.context_class(ENV, variables, template.name, template.blocks)
        try:
            return ENV.concat(template.root_render_func(ctx))
        except jinja2.TemplateError as exc:
            raise RenderError(f"{what}: {exc}") from None
        except Exception as exc:
            raise RenderError(f"{what}: {exc.__class__.__name__}: {exc}") from None


def compile_template(text: str, loc: tuple[str | int, ...]) -> jinja2.Template:
    try:
        return ENV.from_string(text)
    except jinja2.TemplateSyntaxError as exc:
        where = f" (template line {exc.lineno})" if text.count("\n") else ""
        raise SpecError(f"template syntax: {exc.message}{where}", loc) from None
