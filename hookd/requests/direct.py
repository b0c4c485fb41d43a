"""Templates rendered without Jinja2: a template that is only literal text and `{{ }}`
outputs of names, constant-key lookups (`a.b`, `a["b"]`, `a[0]`) and a few filters is
planned at load into Python source that does, step for step, what its compiled Jinja2 code
does, compiled once into one function (no closure per node: a delivery runs straight-line
code, a header of one name is one dict look-up and a `str`).

Written by hand because no library renders a Jinja2 AST by another way; it stays exact by
doing less, never more:

- a name is read from the variables as `Context.resolve_or_missing` reads it;
- a lookup is done only on an exact `dict` (the sandbox's getattr takes a dict's key, as
  hookd's `_Sandbox.getattr` does, unless the name is a dict attribute: such `a.items`
  is not planned) or an exact `list` with an int index; a key missing where the sandbox
  would answer an undefined gives `MISSING`, which only `default` may take;
- filters are the environment's own functions (`env.filters[name]`, called as the
  compiled code calls them), from a short list of pure ones; `default` is Jinja2's test
  (`isinstance(value, Undefined) or (boolean and not value)`) on `MISSING`;
- anything else on the way (a missing value reaching an output or another filter, a
  lookup on a string or another object) raises `Slow`, or the lookup's own KeyError; on
  any exception at all the caller renders the template with Jinja2, which gives the
  output or the error, as it always did.

The generated source names only the template's names and keys (as Python literals, by
`repr`), its literal text (inside one f-string, by `repr`) and names bound in its own
namespace (the filters, constants, `Slow`, `MISSING`, `dict`, `list`, and what a caller
adds: the url's encoder): no builtins, nothing of the template's text is ever code.

So the direct way returns what Jinja2 returns or gives way to it; the differential
property test (tests/unit/requests/test_direct.py) checks it against the sandbox.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from jinja2 import nodes
from jinja2.environment import Environment
from jinja2.exceptions import TemplateSyntaxError

DICT_ATTRIBUTES = frozenset(dir(dict))  # `payload.items` is the method, in Jinja2 as here
FILTERS = frozenset({"tojson", "lower", "upper", "string", "trim", "int", "float", "replace"})
_DEFAULT = frozenset({"default", "d"})
_SPECIAL_NAMES = frozenset({"self", "loop", "super", "caller", "varargs", "kwargs"})


class Slow(Exception):
    """The direct way does not say what this render gives: Jinja2 renders it."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # where the sandbox would give an Undefined
Chain = tuple[tuple[str | int, bool], ...]  # a lookup's keys after its name: (key, may_miss)


def _walk(found: Any, chain: Chain) -> Any:
    """A lookup inside `default` (the rare case, not inlined): MISSING where the sandbox
    gives an undefined, Slow where it would do something else (a string's item, a method)."""
    for key, may_miss in chain:
        cls = found.__class__
        if cls is dict:
            found = found.get(key, MISSING)
        elif cls is list and key.__class__ is int:
            try:
                found = found[key]
            except IndexError:
                found = MISSING
        else:  # undefined (StrictUndefined raises), a string, another object: Jinja2's
            raise Slow
        if found is MISSING and not may_miss:
            raise Slow
    return found


class Code(NamedTuple):
    """One output as Python: statements (reading the variables as `v`), then the
    expression of its value, in a namespace shared by the template's outputs."""

    lines: tuple[str, ...]
    expr: str
    text: bool = False  # its value is always a str (a filter that returns one)


_TEXT_FILTERS = frozenset({"tojson", "lower", "upper", "string", "trim", "replace"})
_FLOAT_TEXTS: dict[float, str] = {}  # float_text's memory
_REMEMBERED = 1024  # floats remembered at most (then forgotten together)


def float_text(value: float) -> str:
    """`str(value)`, remembered. A float's shortest text costs ~8 k instructions (CPython's
    dtoa), and an event's float (a time, an amount) is written once by each hook that
    renders it: the hooks after the first take the text from here. 0.0 and -0.0 are one
    key with two texts: neither is kept (nor is NaN found again: it equals nothing)."""
    text = _FLOAT_TEXTS.get(value)
    if text is None:
        text = str(value)
        if value:
            if len(_FLOAT_TEXTS) >= _REMEMBERED:
                _FLOAT_TEXTS.clear()
            _FLOAT_TEXTS[value] = text
    return text


class Plan(NamedTuple):
    """A template as literal texts around its outputs: literals[0], outputs[0],
    literals[1], …, literals[-1] (one more literal than outputs); `names` is what their
    code reads besides the variables."""

    literals: tuple[str, ...]
    outputs: tuple[Code, ...]
    names: dict[str, Any]


class _Writer:
    """Source lines and the namespace of one template's code."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {"__builtins__": {}, "Slow": Slow, "MISSING": MISSING,
                                      "dict": dict, "list": list, "_walk": _walk}
        self.count = 0

    def bind(self, value: Any) -> str:
        """A name in the namespace for `value` (a constant, a filter, a key chain)."""
        for name, bound in self.names.items():
            if bound is value:  # (tojson twice: one name)
                return name
        name = f"_n{len(self.names)}"
        self.names[name] = value
        return name

    def local(self, expr: str) -> str:
        name = f"t{self.count}"
        self.count += 1
        self.lines.append(f"{name} = {expr}")
        return name


def plan(env: Environment, source: str) -> Plan | None:
    """The template's plan, or None when it takes more than the direct way does (or the
    environment escapes its output, which the direct way does not)."""
    if env.autoescape is not False:
        return None
    try:
        tree = env.parse(source)
    except TemplateSyntaxError:
        return None
    eval_ctx = nodes.EvalContext(env)
    writer = _Writer()
    literals, outputs = [""], []
    for node in tree.body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                literals[-1] += child.data
                continue
            start = len(writer.lines)
            expr = _value(env, eval_ctx, child, False, writer)
            if expr is None:
                return None
            outputs.append(Code(tuple(writer.lines[start:]), expr, isinstance(
                child, nodes.Filter) and child.name in _TEXT_FILTERS))
            literals.append("")
    return Plan(tuple(literals), tuple(outputs), writer.names)


def _value(env: Environment, eval_ctx: nodes.EvalContext, node: nodes.Node,
           missing_ok: bool, out: _Writer) -> str | None:
    """The expression of `node`'s value (its statements written to `out`), or None."""
    if isinstance(node, nodes.Const):
        return out.bind(node.value)
    if isinstance(node, nodes.Filter):
        return _filter(env, eval_ctx, node, out)
    return _lookup(eval_ctx, node, missing_ok, out)


def _constants(eval_ctx: nodes.EvalContext, args: list[nodes.Expr]) -> list[Any] | None:
    try:
        return [arg.as_const(eval_ctx) for arg in args]
    except Exception:  # nodes.Impossible (not a constant) or its error: Jinja2's to say
        return None


def _filter(env: Environment, eval_ctx: nodes.EvalContext, node: nodes.Filter,
            out: _Writer) -> str | None:
    if (node.node is None or node.dyn_args is not None or node.dyn_kwargs is not None
            or node.name not in FILTERS | _DEFAULT or node.name not in env.filters):
        return None
    args = _constants(eval_ctx, node.args)
    kw_values = _constants(eval_ctx, [kw.value for kw in node.kwargs])
    if args is None or kw_values is None:
        return None
    kwargs = {str(kw.key): v for kw, v in zip(node.kwargs, kw_values, strict=True)}
    inner = _value(env, eval_ctx, node.node, node.name in _DEFAULT, out)
    if inner is None:
        return None
    if node.name in _DEFAULT:
        return _default(inner, args, kwargs, out)
    func = env.filters[node.name]
    dumps = getattr(func, "dumps", None)  # (dumps, default): the filter is orjson's text
    if dumps is not None and not args and not kwargs:  # written out: a Python call less per
        # output (any error goes the Jinja2 way, whose filter says it as it always did)
        return out.local(f"{out.bind(dumps[0])}({inner}, {out.bind(dumps[1])}).decode()")
    call = [inner, *(out.bind(arg) for arg in args)]
    passed = getattr(func, "jinja_pass_arg", None)  # what the compiled code passes first
    if passed is not None:  # (replace: reads eval_ctx.autoescape, False in every plan)
        if getattr(passed, "name", None) != "eval_context":
            return None
        call.insert(0, out.bind(eval_ctx))
    if kwargs:
        call.append(f"**{out.bind(kwargs)}")
    return out.local(f"{out.bind(func)}({', '.join(call)})")


def _default(inner: str, args: list[Any], kwargs: dict[str, Any], out: _Writer) -> str | None:
    """Jinja2's do_default with `MISSING` for its Undefined (`boolean` is a constant: its
    truth is known at load)."""
    if len(args) > 2 or set(kwargs) - {"default_value", "boolean"}:
        return None
    names = ("default_value", "boolean")[:len(args)]
    if set(names) & set(kwargs):
        return None
    given = {**dict(zip(names, args, strict=True)), **kwargs}
    default_value, boolean = given.get("default_value", ""), given.get("boolean", False)
    found = out.local(inner)
    test = f"{found} is MISSING or not {found}" if boolean else f"{found} is MISSING"
    out.lines.append(f"if {test}: {found} = {out.bind(default_value)}")
    return found


def _lookup(eval_ctx: nodes.EvalContext, node: nodes.Node, missing_ok: bool,
            out: _Writer) -> str | None:
    """`name`, then each constant key: (key, may_miss), may_miss False where a missing key
    is not undefined in the sandbox (a str naming a dict attribute: the method)."""
    steps: list[tuple[str | int, bool]] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            if node.attr in DICT_ATTRIBUTES:
                return None
            steps.append((node.attr, True))
        else:
            key = _constants(eval_ctx, [node.arg])
            if key is None or key[0].__class__ not in (str, int):
                return None
            steps.append((key[0], key[0] not in DICT_ATTRIBUTES))
        node = node.node
    if not isinstance(node, nodes.Name) or node.ctx != "load" or node.name in _SPECIAL_NAMES:
        return None
    name = node.name
    steps.reverse()
    if missing_ok:  # missing: Jinja2's undefined, which `default` takes
        first = f"v.get({name!r}, MISSING)"
        return out.local(f"_walk({first}, {out.bind(tuple(steps))})") if steps else first
    if not steps:  # a name alone (missing: KeyError, Jinja2's to say)
        return f"v[{name!r}]"
    # every key is there, in an exact dict (or list, for an int): anything else, Jinja2's
    found = out.local(f"v[{name!r}]")
    for step, _ in steps:
        kind = f"{found}.__class__"
        ok = f"{kind} is dict or {kind} is list" if step.__class__ is int else f"{kind} is dict"
        out.lines.append(f"if not ({ok}): raise Slow")
        out.lines.append(f"{found} = {found}[{step!r}]")
    return found


def _function(names: dict[str, Any], lines: list[str], result: str) -> Callable[..., Any]:
    """`def f(v): lines; return result`, compiled in its namespace."""
    body = "".join(f"    {line}\n" for line in lines)
    source = f"def f(v):\n{body}    return {result}\n"
    space = dict(names)
    exec(compile(source, "<hookd template>", "exec"), space)  # (the docstring: what it holds)
    func: Callable[..., Any] = space["f"]
    return func


def text_renderer(found: Plan, finish: Callable[[str, int], list[str]] | None = None,
                  names: Mapping[str, Any] | None = None) -> Callable[[Mapping[str, Any]], str]:
    """The plan as one render function: each output as the compiled code writes it,
    `str(value)` (no finalize, no escaping), the literal text around them in one f-string.
    `finish(local, index)`: lines that make the local `local` (output `index`) the text to
    write instead (the url encodes it), reading `names` too."""
    lines: list[str] = []
    text = _braced(found.literals[0])
    for index, (code, literal) in enumerate(zip(found.outputs, found.literals[1:],
                                                strict=True)):
        lines += code.lines
        value = code.expr
        if not value.isidentifier() or finish is not None:  # (f-strings nest no quotes)
            lines.append(f"o{index} = {value}")
            value = f"o{index}"
        if finish is not None:
            lines += finish(value, index)
        elif not code.text:  # (a float's text: float_text's, remembered)
            value = f"(_ft({value}) if {value}.__class__ is float else {value})"
        text += f"{{{value}!s}}" + _braced(literal)  # `!s`: str(value), a str as it is
    return _function({**found.names, "_ft": float_text, "float": float, **(names or {})}, lines,
                     f"f{text!r}")


def _braced(literal: str) -> str:
    """Literal text as an f-string holds it (repr then escapes quotes and the rest)."""
    return literal.replace("{", "{{").replace("}", "}}")
