"""Compiled templates: the fast shapes render exactly as Jinja2 does; syntax errors say where."""

from __future__ import annotations

import pytest

from hookd.errors import SpecError
from hookd.requests.templates import ENV, Text, compile_template


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
