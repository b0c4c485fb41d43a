"""Templates rendered without Jinja2: a template that is only literal text and `{{ }}`
outputs of names, constant-key lookups (`a.b`, `a["b"]`, `a[0]`) and a few filters is
planned at load into closures that do, step for step, what its compiled Jinja2 code does.

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
Value = Callable[[Mapping[str, Any]], Any]  # the variables → one output's value


class Plan(NamedTuple):
    """A template as literal texts around its outputs: literals[0], values[0],
    literals[1], …, literals[-1] (one more literal than values)."""

    literals: tuple[str, ...]
    values: tuple[Value, ...]


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
    literals, values = [""], []
    for node in tree.body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                literals[-1] += child.data
                continue
            value = _value(env, eval_ctx, child, missing_ok=False)
            if value is None:
                return None
            values.append(value)
            literals.append("")
    return Plan(tuple(literals), tuple(values))


def _value(env: Environment, eval_ctx: nodes.EvalContext, node: nodes.Node,
           missing_ok: bool) -> Value | None:
    if isinstance(node, nodes.Const):
        const = node.value
        return lambda variables: const
    if isinstance(node, nodes.Filter):
        return _filter(env, eval_ctx, node)
    return _lookup(eval_ctx, node, missing_ok)


def _constants(eval_ctx: nodes.EvalContext, args: list[nodes.Expr]) -> list[Any] | None:
    try:
        return [arg.as_const(eval_ctx) for arg in args]
    except Exception:  # nodes.Impossible (not a constant) or its error: Jinja2's to say
        return None


def _filter(env: Environment, eval_ctx: nodes.EvalContext, node: nodes.Filter) -> Value | None:
    if (node.node is None or node.dyn_args is not None or node.dyn_kwargs is not None
            or node.name not in FILTERS | _DEFAULT or node.name not in env.filters):
        return None
    args = _constants(eval_ctx, node.args)
    kw_values = _constants(eval_ctx, [kw.value for kw in node.kwargs])
    if args is None or kw_values is None:
        return None
    kwargs = {str(kw.key): v for kw, v in zip(node.kwargs, kw_values, strict=True)}
    inner = _value(env, eval_ctx, node.node, missing_ok=node.name in _DEFAULT)
    if inner is None:
        return None
    if node.name in _DEFAULT:
        return _default(inner, args, kwargs)
    func = env.filters[node.name]
    fixed = tuple(args)
    passed = getattr(func, "jinja_pass_arg", None)  # what the compiled code passes first
    if passed is not None:  # (replace: reads eval_ctx.autoescape, False in every plan)
        if getattr(passed, "name", None) != "eval_context":
            return None
        return lambda variables: func(eval_ctx, inner(variables), *fixed, **kwargs)
    if kwargs:
        return lambda variables: func(inner(variables), *fixed, **kwargs)
    if fixed:
        return lambda variables: func(inner(variables), *fixed)
    name = _bare_name(node.node)
    if name is not None:  # `name|tojson`, the common output: one call fewer
        return lambda variables: func(variables[name])  # (KeyError: Jinja2's to say)
    return lambda variables: func(inner(variables))


def _bare_name(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Name) and node.ctx == "load" and node.name not in _SPECIAL_NAMES:
        return node.name
    return None


def _default(inner: Value, args: list[Any], kwargs: dict[str, Any]) -> Value | None:
    """Jinja2's do_default with `MISSING` for its Undefined."""
    if len(args) > 2 or set(kwargs) - {"default_value", "boolean"}:
        return None
    names = ("default_value", "boolean")[:len(args)]
    if set(names) & set(kwargs):
        return None
    given = {**dict(zip(names, args, strict=True)), **kwargs}
    default_value, boolean = given.get("default_value", ""), given.get("boolean", False)

    def value(variables: Mapping[str, Any]) -> Any:
        found = inner(variables)
        if found is MISSING or (boolean and not found):
            return default_value
        return found
    return value


def _lookup(eval_ctx: nodes.EvalContext, node: nodes.Node, missing_ok: bool) -> Value | None:
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
    chain = tuple(steps)
    if not chain:  # a name alone; missing: Jinja2's undefined (an error but in `default`)
        if missing_ok:
            return lambda variables: variables.get(name, MISSING)
        return lambda variables: variables[name]  # (KeyError: Jinja2's to say)

    def value(variables: Mapping[str, Any]) -> Any:
        found = variables.get(name, MISSING)
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
        if found is MISSING and not missing_ok:
            raise Slow
        return found
    if len(chain) == 1 and not missing_ok:  # `meta.key`: a key of a dict, or as above
        first = chain[0][0]

        def one(variables: Mapping[str, Any]) -> Any:
            found = variables[name]
            if found.__class__ is dict:
                return found[first]  # (KeyError: Jinja2's to say, as `value` would leave it)
            return value(variables)
        return one
    return value


def text_renderer(found: Plan) -> Callable[[Mapping[str, Any]], str]:
    """The plan as a render function: each output as the compiled code writes it,
    `str(value)` (no finalize, no escaping)."""
    head, values, tail = found.literals[0], found.values, found.literals[1:]
    if len(values) == 1:
        only, end = values[0], tail[0]

        def render_one(variables: Mapping[str, Any]) -> str:
            out = only(variables)
            return head + (out if out.__class__ is str else str(out)) + end
        return render_one
    pairs = tuple(zip(values, tail, strict=True))

    def render(variables: Mapping[str, Any]) -> str:
        text = head  # (appended in place: fewer steps than a list's appends and a join)
        for value, literal in pairs:
            out = value(variables)
            text += out if out.__class__ is str else str(out)
            text += literal
        return text
    return render
