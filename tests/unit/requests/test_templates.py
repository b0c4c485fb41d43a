"""Compiled templates: the fast shapes render exactly as Jinja2 does; syntax errors say where."""

from __future__ import annotations

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from hookd.errors import SpecError
from hookd.requests.templates import ENV, Text, check_jinja2, compile_template, tojson


@pytest.mark.parametrize("source", ["{{ call }}", "{{ call }}\n", "{{call}}\n\n", "{{ call }} ",
                                    "\n{{ call }}", "plain\n", "{{ nope|default('d') }}\n"])
def test_the_fast_shapes_render_as_jinja_does(source: str) -> None:
    """A YAML block scalar (`body: |`) ends in a newline; Jinja keeps it, so must we."""
    variables = {"call": "c-1"}
    assert Text(source, ENV.from_string(source)).render(variables, "t") == (
        ENV.from_string(source).render(variables))


def test_a_syntax_error_names_its_place_and_the_template_line() -> None:
    with pytest.raises(SpecError) as caught:
        compile_template("line one\n{{ oops(", ("hooks", 0, "body"))
    assert caught.value.path == ("hooks", 0, "body")
    assert caught.value.message.startswith("template syntax:")
    assert caught.value.message.endswith("(template line 2)")


_PLAIN_SANDBOX = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined,
                                               keep_trailing_newline=True)


@pytest.mark.parametrize("source", [
    "{{ meta.key }}", "{{ meta.offset + 1 }}", "{{ payload.items is defined }}",
    "{{ payload.items() | list }}", "{{ payload.keys | string | length > 0 }}",
    "{{ payload.nope is defined }}", "{{ payload.nope | default('d') }}",
    "{{ payload.nested.deep }}", "{{ payload['items'] }}", "{{ text.upper() }}",
])
def test_dotted_access_on_dicts_as_jinja_does(source: str) -> None:
    """The dict fast path of the sandbox's getattr: an attribute of dict (a method) wins
    over a key of the same name, a missing key is undefined, other objects are Jinja's."""
    variables = {"meta": {"key": "k-1", "offset": 41}, "text": "abc",
                 "payload": {"items": 3, "keys": "k", "nested": {"deep": True}}}
    assert ENV.from_string(source).render(variables) == (
        _PLAIN_SANDBOX.from_string(source).render(variables))


def test_a_missing_key_says_what_jinja_says() -> None:
    with pytest.raises(jinja2.UndefinedError) as ours:
        ENV.from_string("{{ meta.nope }}").render(meta={})
    with pytest.raises(jinja2.UndefinedError) as theirs:
        _PLAIN_SANDBOX.from_string("{{ meta.nope }}").render(meta={})
    assert str(ours.value) == str(theirs.value)


def test_the_jinja2_internal_hookd_renders_through_is_checked_at_import() -> None:
    check_jinja2(ENV)  # this Jinja2 has it (or hookd.requests.templates would not import)

    class WithoutIt(ImmutableSandboxedEnvironment):
        """A Jinja2 whose templates have no root_render_func."""

        def from_string(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
            class Bare:
                name, blocks = None, {}
            return Bare()

    with pytest.raises(ImportError, match=r"root_render_func.*jinja2>=3\.1,<3\.2"):
        check_jinja2(WithoutIt())


def test_tojson_of_an_undefined_is_an_error_strict_or_not() -> None:
    with pytest.raises(jinja2.UndefinedError, match="'nope' is undefined"):
        tojson({"a": jinja2.StrictUndefined(name="nope")})
    with pytest.raises(jinja2.UndefinedError):
        tojson([jinja2.Undefined(name="lenient")])
