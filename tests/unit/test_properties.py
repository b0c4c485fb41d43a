"""Property tests (hypothesis) for the parsers and renderers that take outside input:
durations, `${}` secret references, `${field}` raw bodies and header templates.

Filters and the offset tracker have their own properties in test_filters.py and
test_offsets.py. Every test here is derandomized: the same examples on every run."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings

from hookd.config import HookConfig
from hookd.config.durations import format_duration, parse_duration
from hookd.config.secrets import SecretResolver
from hookd.errors import RenderError, SpecError
from hookd.events.decode import Event, Meta
from hookd.requests.compile import compile_hook
from hookd.requests.render import CompiledHook

SETTINGS = settings(derandomize=True, database=None, deadline=None, max_examples=300,
                    suppress_health_check=[HealthCheck.too_slow])

# text that can come out of a UTF-8 file or a JSON document: no lone surrogates
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


# ------------------------------------------------------------------------------ durations

MILLIS = st.integers(min_value=1, max_value=10**12)  # 1 ms .. ~31 years


@SETTINGS
@given(ms=MILLIS)
def test_duration_format_then_parse_round_trips(ms: int) -> None:
    seconds = ms / 1000
    text = format_duration(seconds)
    assert re.fullmatch(r"[1-9][0-9]*(ms|s|m|h|d)", text), text  # shortest, no decimals
    parsed = parse_duration(text)
    assert math.isclose(parsed, seconds, rel_tol=1e-12, abs_tol=0.0)
    assert round(parsed * 1000) == ms
    assert format_duration(parsed) == text  # and back to the same text


@SETTINGS
@given(ms=MILLIS)
@example(ms=9)
def test_duration_round_trip_is_exact(ms: int) -> None:
    assert parse_duration(format_duration(ms / 1000)) == ms / 1000


_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
PARTS = st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(list(_UNIT_SECONDS)),
                           st.none() | st.integers(0, 999)), min_size=1, max_size=4)


@SETTINGS
@given(parts=PARTS, pad=st.sampled_from(["", " ", "\t", "  \n"]))
def test_duration_grammar_sums_its_parts(parts: list[tuple[int, str, int | None]],
                                         pad: str) -> None:
    text = "".join(f"{n}{'' if frac is None else f'.{frac}'}{unit}" for n, unit, frac in parts)
    expected = sum(float(f"{n}{'' if frac is None else f'.{frac}'}") * _UNIT_SECONDS[unit]
                   for n, unit, frac in parts)
    assert math.isclose(parse_duration(pad + text + pad), expected, rel_tol=1e-9, abs_tol=1e-9)


# the grammar as hookd documents it (README, `hookd schema config`), with Python's \d
_GRAMMAR = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+", re.ASCII)  # ASCII digits only
DURATION_ALPHABET = st.sampled_from([*"0123456789.smhd -+eE_,:", "ms", "1", "\n", "\u0663"])


@SETTINGS
@given(text=st.one_of(st.text(max_size=12), st.lists(DURATION_ALPHABET, max_size=8).map("".join)))
@example(text="10 seconds")
@example(text="5")
@example(text="-5s")
@example(text="1e3s")
@example(text="5S")
@example(text=".5s")
@example(text="5.s")
@example(text="1h 30m")
@example(text="\u0660s")  # an Arabic-Indic zero: a digit to `\d`, not to durations
@example(text="")
def test_durations_outside_the_grammar_are_spec_errors_and_nothing_else(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except SpecError as exc:
        assert not _GRAMMAR.fullmatch(text.strip())
        assert "duration" in exc.message
    else:
        assert _GRAMMAR.fullmatch(text.strip()), text
        assert isinstance(seconds, float) and seconds >= 0


@pytest.mark.parametrize("text", ["\u0663s", "\uff15m", "\u0967h"])
def test_durations_are_ascii_only(text: str) -> None:
    with pytest.raises(SpecError):
        parse_duration(text)


@SETTINGS
@given(value=st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                       st.lists(st.integers(), max_size=2), st.binary(max_size=4)))
def test_durations_that_are_not_strings_are_spec_errors(value: Any) -> None:
    with pytest.raises(SpecError):
        parse_duration(value)


# ------------------------------------------------------------------- ${} secret references

_PREFIXES = ("${env:", "${file:", "${cred:")
PLAIN = TEXT.filter(lambda t: not any(p in t for p in _PREFIXES))
NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="}"),
                min_size=1, max_size=12)


def _resolver(environ: Mapping[str, str]) -> SecretResolver:
    return SecretResolver(Path("/nonexistent-hookd-base"), dict(environ))


@SETTINGS
@given(text=PLAIN, environ=st.dictionaries(NAMES, TEXT, max_size=3))
@example(text="$TOKEN ${TOKEN} {env:TOKEN} ${other:TOKEN} $ {env:X} ${ env:X}", environ={})
def test_text_without_references_is_returned_unchanged(text: str,
                                                       environ: dict[str, str]) -> None:
    resolver = _resolver(environ)
    assert resolver.substitute(text) == text
    assert resolver.found == set()


# values may themselves look like references: they are never expanded again
VALUES = st.one_of(TEXT, st.sampled_from(["", "${env:A}", "${file:/etc/hostname}", "}", "${"]))


@SETTINGS
@given(data=st.data(), environ=st.dictionaries(NAMES, VALUES, min_size=1, max_size=4))
def test_env_references_are_replaced_exactly_anywhere(data: Any,
                                                      environ: dict[str, str]) -> None:
    names = sorted(environ)
    refs = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=4))
    chunks = data.draw(st.lists(PLAIN, min_size=len(refs) + 1, max_size=len(refs) + 1))
    text = chunks[0] + "".join(f"${{env:{name}}}{chunk}"
                               for name, chunk in zip(refs, chunks[1:], strict=True))
    expected = chunks[0] + "".join(environ[name] + chunk
                                   for name, chunk in zip(refs, chunks[1:], strict=True))
    resolver = _resolver(environ)
    assert resolver.substitute(text) == expected
    # every value substituted is remembered (for masking), and nothing else; an empty
    # value is nothing to mask
    assert resolver.found == {environ[name] for name in refs if environ[name]}


@SETTINGS
@given(before=PLAIN, after=PLAIN, name=NAMES, environ=st.dictionaries(NAMES, TEXT, max_size=3))
def test_a_missing_env_reference_is_a_spec_error(before: str, after: str, name: str,
                                                 environ: dict[str, str]) -> None:
    environ.pop(name, None)
    resolver = _resolver(environ)
    with pytest.raises(SpecError) as caught:
        resolver.substitute(f"{before}${{env:{name}}}{after}")
    assert name in caught.value.message


@SETTINGS
@given(text=st.text(max_size=40).map(lambda t: t.replace("}", "").replace("\x00", "")),
       kind=st.sampled_from(["env", "file", "cred"]))
@example(text="../../../../../../etc/hostname", kind="cred")
@example(text="/", kind="file")
def test_any_reference_resolves_or_is_a_spec_error(text: str, kind: str) -> None:
    """Whatever the name (paths, traversal, odd characters): a value or SpecError."""
    resolver = _resolver({"CREDENTIALS_DIRECTORY": "/nonexistent-hookd-creds"})
    try:
        value = resolver.substitute(f"${{{kind}:{text}}}")
    except SpecError:
        return
    assert isinstance(value, str)


@pytest.mark.parametrize("text", ["${file:secrets/a\x00b}", "${cred:a\x00b}"])
def test_a_nul_in_a_secret_path_is_a_spec_error(text: str) -> None:
    resolver = _resolver({"CREDENTIALS_DIRECTORY": "/nonexistent-hookd-creds"})
    with pytest.raises(SpecError):
        resolver.substitute(text)


# ----------------------------------------------------------------------------- rendering

META = Meta("cc.events", 0, 1, key="k", timestamp=1_700_000_000_000, headers={})
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                    st.floats(allow_nan=False, allow_infinity=False), TEXT)
KEYS = st.one_of(st.sampled_from(["a", "b", "id", "0", "a.b", "x y", "${a}"]), TEXT)
JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)), max_leaves=12)
# what decode_event can hand over: a JSON object as orjson reads it back
PAYLOADS = st.dictionaries(KEYS, JSON, max_size=5).map(lambda p: orjson.loads(orjson.dumps(p)))
RAW_PIECES = st.one_of(
    st.sampled_from(["${", "}", "${a}", "${b}", "${id}", "${a.b}", "${a.0}", "${ a }",
                     "${missing}", "${}", "$", "{", '"', "\\", "${${a}}", "${0}"]),
    TEXT)
RAW_BODIES = st.lists(RAW_PIECES, max_size=8).map("".join)


def _hook(request: Mapping[str, Any]) -> CompiledHook:
    config = HookConfig.model_validate({"id": "p", "event": ["E"], "request": {
        "url": "https://hooks.example.com/x", **request}})
    compiled, errors = compile_hook(config, 10.0, (1.0,))
    assert errors == [] and compiled is not None
    return compiled


def _event(payload: Mapping[str, Any], meta: Meta = META) -> Event:
    return Event("E", "evt", payload, meta)


@SETTINGS
@given(raw=RAW_BODIES, payload=PAYLOADS,
       content_type=st.sampled_from(["application/json", "text/plain", "application/x+json"]))
def test_raw_body_renders_or_is_a_render_error(raw: str, payload: dict[str, Any],
                                               content_type: str) -> None:
    hook = _hook({"raw_body": raw, "content_type": content_type})
    try:
        request = hook.render(_event(payload))
    except RenderError as exc:
        assert "raw_body" in str(exc)
        return
    assert isinstance(request.body, bytes)
    if "${" not in raw:
        assert request.body == raw.encode()  # nothing to substitute: the text as written


@SETTINGS
@given(value=TEXT, before=PLAIN.map(lambda t: t.replace("$", "")),
       after=PLAIN.map(lambda t: t.replace("$", "")))
def test_raw_body_string_values_are_data_not_templates(value: str, before: str,
                                                       after: str) -> None:
    """In text bodies a value goes in as is; in JSON bodies as an escaped JSON string."""
    payload = {"a": value, "b": "B"}
    text = _hook({"raw_body": before + "${a}" + after, "content_type": "text/plain"})
    assert text.render(_event(payload)).body == (before + value + after).encode()
    as_json = _hook({"raw_body": '{"v": "${a}", "w": "${b}"}'})
    assert orjson.loads(as_json.render(_event(payload)).body) == {"v": value, "w": "B"}


@pytest.mark.parametrize("request_", [
    pytest.param({"raw_body": '{"deep": ${deep}}'}, id="raw_body"),
    pytest.param({"fields": ["deep"]}, id="fields-body"),
    pytest.param({"body": '{"deep": {{ deep|tojson }}}'}, id="jinja-tojson"),
])
def test_deeply_nested_payloads_are_render_errors(request_: Mapping[str, Any]) -> None:
    """orjson reads 1,024 levels but writes only 254: a decodable event can be too deep
    to write back out. That must be a RenderError (dead-lettered), never another error."""
    payload = orjson.loads(b'{"deep": ' + b'{"a":' * 300 + b"1" + b"}" * 300 + b"}")
    hook = _hook(request_)
    with pytest.raises(RenderError):
        hook.render(_event(payload))


@pytest.mark.parametrize("request_", [{"raw_body": "\ud800${a}"}, {"body": "\ud800{{ a }}",
                                                                  "content_type": "text/plain"}])
def test_a_body_with_a_lone_surrogate_is_refused_at_load_or_a_render_error(
        request_: Mapping[str, Any]) -> None:
    config = HookConfig.model_validate({"id": "p", "event": ["E"], "request": {
        "url": "https://hooks.example.com/x", **request_}})
    compiled, errors = compile_hook(config, 10.0, (1.0,))
    if compiled is None:
        assert errors
        return
    with pytest.raises(RenderError):
        compiled.render(_event({"a": "x"}))


# ------------------------------------------------------------------------------ headers

HEADER_TEXT = st.lists(st.one_of(st.sampled_from(["\r", "\n", "\r\n", "\x00", ":", " ",
                                                  "X-Injected: 1", "\u2028", "\x85", "\t"]),
                                 st.characters(blacklist_categories=("Cs",))),
                       max_size=8).map("".join)
HEADER_VALUES = st.one_of(HEADER_TEXT, st.integers(-(2**63), 2**64 - 1), st.booleans(),
                          st.none(),
                          st.lists(HEADER_TEXT, max_size=2), st.dictionaries(HEADER_TEXT,
                                                                              HEADER_TEXT,
                                                                              max_size=2))
TEMPLATES = st.sampled_from([
    "{{ v }}", "pre {{ v }} post", "{{ v|upper }}", "{{ v ~ w }}", "{{ payload.v }}",
    "{{ meta.headers.h }}", "{{ v|tojson }}", "{{ v|string|replace('x', w|string) }}",
    "{% for c in v|string %}{{ c }}{% endfor %}", "{{ w }}\r\n{{ v }}", "static",
])


@SETTINGS
@given(template=TEMPLATES, v=HEADER_VALUES, w=HEADER_VALUES, h=HEADER_TEXT)
@example(template="{{ v }}", v="x\r\nX-Injected: 1", w="", h="")
@example(template="{{ meta.headers.h }}", v="", w="", h="00-abc\r\nX-Injected: 1")
def test_rendered_headers_never_carry_cr_lf_or_nul(template: str, v: Any, w: Any,
                                                   h: str) -> None:
    hook = _hook({"headers": {"X-Data": template}})
    meta = Meta("cc.events", 0, 1, key="k", headers={"h": h})
    try:
        request = hook.render(_event(orjson.loads(orjson.dumps({"v": v, "w": w})), meta))
    except RenderError as exc:
        assert "header x-data" in str(exc)
        return
    for name, value in request.headers:
        assert not re.search(r"[\r\n\x00]", name + value), (name, value)
    assert dict(request.headers)["x-data"] is not None


@SETTINGS
@given(v=HEADER_TEXT)
def test_header_data_without_line_breaks_is_sent_as_is(v: str) -> None:
    """The other half: data is refused only for CR, LF or NUL, and otherwise sent literally
    (`{{ 7*7 }}` in a field is those characters, not 49)."""
    hook = _hook({"headers": {"X-Data": "{{ v }}"}})
    payload = {"v": v}
    if re.search(r"[\r\n\x00]", v):
        with pytest.raises(RenderError):
            hook.render(_event(payload))
    else:
        assert dict(hook.render(_event(payload)).headers)["x-data"] == v
