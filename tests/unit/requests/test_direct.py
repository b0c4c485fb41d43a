"""The direct way (hookd.requests.direct) against the sandboxed Jinja2 render: over every
template of the sample configs, the tests and the benchmarks, and over generated ones, on
generated JSON payloads, a compiled `Text` / `UrlText` renders the same string as its
Jinja2 path alone, or both raise the same RenderError; and where the direct way answers
(it did not give way with Slow), that answer is the string. Derandomized: the same
examples on every run."""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import orjson
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings

from bench.common import bench_hooks, other_hooks
from hookd.errors import RenderError, SpecError
from hookd.requests import direct
from hookd.requests.direct import float_text, plan
from hookd.requests.templates import ENV, GLOBALS, Text, compile_template
from hookd.requests.urls import URL_ENV, UrlText, compile_url

REPO = Path(__file__).resolve().parents[3]
SETTINGS = settings(derandomize=True, database=None, deadline=None, max_examples=300,
                    suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------- the templates

def _config_templates() -> Iterator[tuple[str, str]]:
    """(kind, source) of each hook template in config/ and bench's hooks."""
    hooks: list[Any] = [*bench_hooks("http://127.0.0.1:9"), *other_hooks(4, "http://127.0.0.1:9")]
    for path in sorted((REPO / "config").rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if isinstance(doc, dict) and isinstance(doc.get("hooks"), list):
            hooks += doc["hooks"]
    for hook in hooks:
        req = hook.get("request", {})
        yield "url", req["url"]
        for group in ("headers", "query"):
            yield from (("text", v) for v in req.get(group, {}).values())
        if "body" in req:
            yield "text", req["body"]


def _test_templates() -> Iterator[tuple[str, str]]:
    """Every string in the tests that looks like a template (most are hooks' url, header or
    body), tried as both kinds."""
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                    "{{" in node.value and len(node.value) < 2000):
                yield "text", node.value
                yield "url", node.value


def _compiles(kind: str, source: str) -> bool:
    try:
        _compiled(kind, source)
    except SpecError:
        return False
    return True




@functools.cache
def _compiled(kind: str, source: str) -> tuple[Text | UrlText, Text | UrlText]:
    """The template as hookd compiles it, and the same with its direct way taken away."""
    if kind == "url":
        fast: Text | UrlText = compile_url(source, ())
        slow: Text | UrlText = UrlText(source, fast.template)
    else:
        fast = Text(source, compile_template(source, ()))
        slow = Text(source, fast.template)
    slow.direct = None
    return fast, slow


SAMPLES = sorted({t for t in [*_config_templates(), *_test_templates()] if _compiles(*t)})


# ---------------------------------------------------------------------- the payloads

KEYS = ["a", "b", "id", "k", "0", "items", "keys", "get", "values", "__class__", "event",
        "meta", "payload", "hook", "name", "ÿ", "x y"]
SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(st.characters(codec="utf-8"), max_size=12)
           | st.sampled_from(["", " A b ", "Call:Ringing", "x\x00y", "\x000\x01", "42", "4.5",
                              "0x1F", "ÄÖ ß", "a/b?c#d&e=f", ".."]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4), max_leaves=8)
PAYLOADS = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=3), JSON, max_size=6)
EXAMPLES = [doc["data"] if "specversion" in doc else doc  # (a CloudEvent's payload: its data)
            for doc in (orjson.loads(p.read_bytes())
                        for p in sorted((REPO / "config/examples").glob("*.json")))]


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    """A generated payload, or a sample event with fields dropped, added or replaced."""
    if draw(st.booleans()):
        return draw(PAYLOADS)
    event = dict(draw(st.sampled_from(EXAMPLES)))
    for key in draw(st.lists(st.sampled_from(sorted(event)), max_size=3)):
        event.pop(key, None)
    event.update(draw(PAYLOADS))
    return event


def variables(payload: dict[str, Any], offset: int = 41) -> dict[str, Any]:
    """What CompiledHook.variables gives templates."""
    ctx = {**GLOBALS, **payload}
    ctx.update(event=payload.get("event", "Answered"), payload=payload,
               meta={"topic": "cc.events", "partition": 0, "offset": offset, "key": "k-1",
                     "timestamp": 1700000000000, "headers": [("h", b"v")]},
               trace={"traceparent": "", "tracestate": ""},
               hook={"id": "crm", "description": None})
    return ctx


# ---------------------------------------------------------------------- generated templates

# few names and keys, so that lookups mostly hit, sometimes miss and meet dict methods; the
# parts the direct way does not plan are there too, less often
NAMES = st.sampled_from(["a", "b", "payload", "a", "b", "payload", "meta", "nope", "range"])
STEPS = st.sampled_from([".a", ".b", ".k", ".items", ".get", "[0]", "[-1]", "['a']",
                         "['items']", "['__class__']", '["k"]', "['0']", ".0", "[5]", ".key",
                         ".offset", ".__class__", "[true]", "[1.5]"])
FILTERS = st.sampled_from([
    "tojson", "lower", "upper", "string", "trim", "int", "float", "replace('a', 'B')",
    "replace(':', '-')", "default('d')", "default(none, true)", "d(0)", "d",
    "default(default_value=1)", "int(7)", "float(default=1.5)", "trim('x ')",
    "replace('a', 'b', 1)", "title", "length", "url_raw", "e"])
SMALL_KEYS = st.sampled_from(["a", "b", "k", "0", "items", "get", "__class__"])
NESTED = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(SMALL_KEYS, inner, min_size=1, max_size=4), max_leaves=8)
SMALL_PAYLOADS = st.fixed_dictionaries(
    {"a": st.dictionaries(SMALL_KEYS, NESTED, min_size=1, max_size=4) | NESTED, "b": NESTED},
    optional={"k": NESTED, "items": NESTED, "get": NESTED, "0": NESTED, "__class__": NESTED})
EXPRS = st.builds(lambda n, s, f: n + "".join(s) + "".join("|" + x for x in f),
                  NAMES, st.lists(STEPS, max_size=2), st.lists(FILTERS, max_size=2))
LITERALS = st.sampled_from(['{"a": ', ", ", "}", "/", "?q=", "&r=", "#",
                            "http://127.0.0.1:9/", "ü ", "\n", "", "x",
                            "{}'\"\\ \x00{x!r}"])  # (what the generated f-string escapes)
TEMPLATES = st.builds(lambda parts, end: "".join(f"{lit}{{{{ {e} }}}}" for lit, e in parts) + end,
                      st.lists(st.tuples(LITERALS, EXPRS), min_size=1, max_size=2), LITERALS)


# ---------------------------------------------------------------------- the properties

_ADDRESS = re.compile(r"at(?: |%20)0x[0-9a-f]+")


def _unaddressed(text: str) -> str:
    """An object's repr in the output (a template of `map('a')` prints a generator) names
    its address, which two renders need not share: compared without it."""
    return _ADDRESS.sub("at 0x", text)


def _same(kind: str, source: str, ctx: dict[str, Any]) -> bool:
    """Asserts the compiled template renders as its Jinja2 path; True when the direct way
    answered (did not give way)."""
    fast, slow = _compiled(kind, source)
    try:
        expected: str | RenderError = slow.render(ctx, "t")
    except RenderError as exc:
        expected = exc
    else:
        expected = _unaddressed(expected)
    answered = False
    if fast.direct is not None:
        try:
            answer = fast.direct(ctx)
        except Exception:  # Slow, or an error: the render gives way to Jinja2, checked below
            pass
        else:
            answered = True
            assert _unaddressed(answer) == expected, (kind, source)
            assert answer.__class__ is str
    try:
        got: str | RenderError = fast.render(ctx, "t")
    except RenderError as exc:
        got = exc
    else:
        got = _unaddressed(got)
    if isinstance(expected, RenderError):
        assert isinstance(got, RenderError) and str(got) == str(expected), (kind, source)
    else:
        assert got == expected, (kind, source)
    return answered


@pytest.mark.parametrize("event", range(len(EXAMPLES)))
def test_the_sample_templates_render_the_sample_events_as_jinja_does(event: int) -> None:
    for kind, source in SAMPLES:
        _same(kind, source, variables(EXAMPLES[event]))


@SETTINGS
@given(payload=payloads(), index=st.integers(0, len(SAMPLES) - 1))
def test_the_sample_templates_render_as_jinja_does(payload: dict[str, Any], index: int) -> None:
    _same(*SAMPLES[index], variables(payload))


@SETTINGS
@given(source=TEMPLATES, payload=SMALL_PAYLOADS, kind=st.sampled_from(["text", "url"]))
def test_generated_templates_render_as_jinja_does(source: str, payload: dict[str, Any],
                                                  kind: str) -> None:
    assume(_compiles(kind, source))  # (url_raw is a filter of urls only)
    _same(kind, source, variables(payload))


@pytest.mark.parametrize(("source", "payload"), [
    ("{{ payload.items }}", {"items": 1}),  # the method, not the key (not planned)
    ("{{ payload['items'] }}", {"items": 1}), ("{{ payload['items'] }}", {}),  # the method
    ("{{ payload['items']|default('d') }}", {}),  # the method: defined
    ("{{ payload['__class__'] }}", {}),  # the sandbox refuses it
    ("{{ payload['__class__'] }}", {"__class__": "c"}),  # a key like any other
    ("{{ a.b }}", {"a": [1]}), ("{{ a[0] }}", {"a": {"0": 1}}), ("{{ a['0'] }}", {"a": [1]}),
    ("{{ a[0] }}", {"a": "xyz"}), ("{{ a[-1] }}", {"a": [1, 2]}), ("{{ a[5] }}", {"a": [1]}),
    ("{{ a[5]|default('d') }}", {"a": [1]}), ("{{ a.b|d('d') }}", {"a": {}}),
    ("{{ a.b.c|d('d') }}", {"a": {}}),  # undefined.c raises, default or not
    ("{{ a|default('d', true) }}", {"a": ""}), ("{{ a|default('d', true) }}", {"a": 0}),
    ("{{ a|default('d') }}", {"a": None}), ("{{ a|tojson }}", {"a": 2**70}),
    ("{{ a|tojson }}", {"a": "<&'>"}), ("{{ a|int }}", {"a": "0x1F"}),
    ("{{ a|int }}", {"a": float("inf")}), ("{{ a|float }}", {"a": "x"}),
    ("{{ a|lower|replace(':', '-') }}", {"a": "Call:Ring"}), ("{{ a }}", {"a": True}),
    ("{{ a }}", {"a": [1, "x", None]}), ("{{ a }}", {"a": {"k": 1.0}}),
    ("{{ range }}", {}), ("{{ a.items }}", {"a": {"items": 1}}), ("{{ none }}", {}),
    ("{{ 'a/b?' }}", {}), ("{{ 'X'|lower }}", {}), ("{{ a }}", {"a": "x\x000\x01"}),
    # the generated code: literal text in its f-string, chains, defaults on defaults
    ("{'\"}\\{{ a }}\n{x}{{ '{' }}}\x7f\\N{{ '}}' }}", {"a": "{a}"}),
    ("{{ a.b.c }}", {"a": {"b": {"c": 1}}}), ("{{ a.b.c }}", {"a": {"b": [1]}}),
    ("{{ a[0].b }}", {"a": [{"b": 2}]}), ("{{ a[0][1] }}", {"a": [[1, 2]]}),
    ("{{ a.b|d('d')|upper }}", {"a": {"b": "x"}}), ("{{ a|d(0)|d(1) }}", {}),
    ("{{ a|tojson }}{{ b|tojson }}{{ a|tojson }}", {"a": 1, "b": [2]}),
])
@pytest.mark.parametrize("kind", ["text", "url"])
def test_the_edges_render_as_jinja_does(source: str, payload: dict[str, Any], kind: str) -> None:
    _same(kind, source, variables(payload))


# every sample event's fields, and the bench's
FULL = {**{k: v for e in EXAMPLES for k, v in e.items()}, "sent_at": 1.5, "time": "t",
        "domain": "d", "id": "e-1"}
PLANNED = [t for t in _config_templates() if _compiled(*t)[0].direct is not None]


def test_the_direct_way_answers_most_renders_when_the_fields_are_there() -> None:
    """Not vacuous: on the sample events' fields, with some dropped or replaced by
    generated values, the direct way answers most renders of the config and bench
    templates."""
    taken = {True: 0, False: 0}

    @settings(derandomize=True, database=None, deadline=None, max_examples=200)
    @given(index=st.integers(0, len(PLANNED) - 1), drop=st.lists(st.sampled_from(sorted(FULL))),
           extra=PAYLOADS)
    def count(index: int, drop: list[str], extra: dict[str, Any]) -> None:
        payload = {k: v for k, v in FULL.items() if k not in drop} | extra
        taken[_same(*PLANNED[index], variables(payload))] += 1

    count()
    assert taken[True] > taken[False], taken


def test_every_template_of_the_bench_and_the_configs_has_a_plan() -> None:
    """With their fields present they render the direct way (the example events carry them)."""
    full = variables(FULL)
    for kind, source in _config_templates():
        fast, _ = _compiled(kind, source)
        if fast.const is None:
            assert fast.direct is not None, source
            assert fast.direct(full) == _compiled(kind, source)[1].render(full, "t")


@pytest.mark.parametrize("source", [
    "{{ x.y }}", "{{ x['y'] }}", "{{ x[0] }}", "{{ x.0 }}", "{{ x[-1] }}", "a{{ x }}b\n",
    "{{ x|tojson }}", "{{ x|lower|replace(':', '-') }}", "{{ x|upper|trim }}",
    "{{ x|string }}", "{{ x|int }}", "{{ x|float(1.5) }}", "{{ x|default('d') }}",
    "{{ x.y|d(none, true)|tojson }}", "{{ x|default(boolean=true) }}", "{{ 'c' }}",
    "{{ x['items'] }}", "{{ x['__class__'] }}", "{{ range }}",
])
def test_these_take_the_direct_way(source: str) -> None:
    assert plan(ENV, source) is not None
    assert plan(URL_ENV, source) is not None


def test_the_generated_code_reads_only_its_own_namespace() -> None:
    """No builtins: the function sees the filters and constants it was given, and `v`."""
    source = "{{ x|lower }}{{ y.z|default('d') }}{{ 'c' }}{{ x|lower }}"
    render = Text(source, compile_template(source, ())).direct
    assert render is not None
    names = render.__globals__  # type: ignore[attr-defined]
    assert names["__builtins__"] == {}
    assert sorted(k for k in names if not k.startswith("_n")) == [
        "MISSING", "Slow", "__builtins__", "_ft", "_walk", "dict", "f", "float", "list"]
    assert sum(1 for k in names if k.startswith("_n")) == 4  # lower once, y.z, "d", "c"
    assert render({"x": "A", "y": {}}) == "adca"


@pytest.mark.parametrize("source", [
    "{% if x %}a{% endif %}", "{% set a = 1 %}{{ a }}", "{% for a in x %}{{ a }}{% endfor %}",
    "{{ x.items }}", "{{ x.keys }}", "{{ x.__class__ }}", "{{ x.get }}",  # dict attributes
    "{{ self }}", "{{ loop }}", "{{ caller }}",  # names Jinja2 resolves its own way
    "{{ x ~ y }}", "{{ x + 1 }}", "{{ x * 3 }}", "{{ x() }}", "{{ x.upper() }}",
    "{{ x if y }}", "{{ x is defined }}", "{{ not x }}", "{{ [x] }}", "{{ {'a': x} }}",
    "{{ x[y] }}", "{{ x[1.5] }}", "{{ x[true] }}", "{{ x[1:2] }}", "{{ 'abc'[0] }}",
    "{{ (x|lower).y }}", "{{ x|title }}", "{{ x|e }}", "{{ x|length }}", "{{ x|map('a') }}",
    "{{ x|format(1) }}", "{{ x|url_raw }}", "{{ x|replace(y, 'a') }}",
    "{{ x|default(y) }}", "{{ x|default('a', true, 3) }}", "{{ x|default('a', boolean=1, "
    "default_value=2) }}", "{{ x|default('a', default_value='b') }}", "{{ x|tojson(*y) }}",
    "{{ x|lower(**y) }}", "{{ x|nope }}",
])
def test_these_stay_jinja2(source: str) -> None:
    assert plan(ENV, source) is None
    assert plan(URL_ENV, source) is None


def test_a_float_is_written_once_and_then_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    """What several hooks write of one event's float is its text each time, as str()
    gives it: remembered but for 0.0 and -0.0 (one key, two texts) and NaN (equal to
    nothing), and forgotten together past the bound."""
    monkeypatch.setattr(direct, "_FLOAT_TEXTS", {})
    monkeypatch.setattr(direct, "_REMEMBERED", 3)
    for value in (1796000000.123456, 1796000000.123456, 0.0, -0.0, 0.0, float("nan"),
                  float("inf"), -1e-300, 3.0):
        assert float_text(value) == str(value)
    # remembered: the first, NaN and inf (0.0 and -0.0 never); then cleared at 3
    assert sorted(direct._FLOAT_TEXTS.values()) == ["-1e-300", "3.0"]
    source = "{{ t }} {{ t|string }} {{ n }} {{ t|float }}"
    render = Text(source, compile_template(source, ())).direct
    assert render is not None
    for t, n in ((0.0, -0.0), (-0.0, 0.0), (2.5, 2), (True, 1.0), (1, 1.5)):
        assert render({"t": t, "n": n}) == f"{t} {t} {n} {float(t)}"
