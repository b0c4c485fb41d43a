"""YAML parsing that remembers the line of every key and item."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookd.config.source import Source, format_loc, load_yaml_file, parse_yaml
from hookd.errors import ConfigIssue
from tests.unit.conftest import dedent

DOC = dedent("""
    kafka:
      topics:
        - a
        - b
    hooks:
      - id: one
        request:
          url: http://x/
      - {id: two, event: X}
    """)


def test_parse_keeps_data_and_lines() -> None:
    source, issues = parse_yaml(DOC, "f.yaml")
    assert issues == []
    assert source.data == {"kafka": {"topics": ["a", "b"]},
                           "hooks": [{"id": "one", "request": {"url": "http://x/"}},
                                     {"id": "two", "event": "X"}]}
    assert source.lines[("kafka",)] == 1
    assert source.lines[("kafka", "topics")] == 2
    assert source.lines[("kafka", "topics", 1)] == 4
    assert source.lines[("hooks", 0)] == 6
    assert source.lines[("hooks", 0, "request", "url")] == 8
    assert source.lines[("hooks", 1, "event")] == 9


@pytest.mark.parametrize(("loc", "line"), [
    pytest.param(("hooks", 0, "request", "url"), 8, id="exact"),
    pytest.param(("hooks", 0, "request", "method"), 7, id="missing-key-uses-parent"),
    pytest.param(("hooks", 1, "request", "url"), 9, id="missing-subtree-uses-item"),
    pytest.param(("nothing", "here"), 1, id="nowhere-uses-document-start"),
])
def test_line_of_deepest_existing_prefix(loc: tuple[str | int, ...], line: int | None) -> None:
    source, _ = parse_yaml(DOC, "f.yaml")
    assert source.line_of(loc) == line


@pytest.mark.parametrize(("loc", "resolved"), [
    pytest.param(("hooks", 0, "request", "url"), ("hooks", 0, "request", "url"), id="real"),
    pytest.param(("hooks", 1, "request"), ("hooks", 1, "request"), id="final-missing-key"),
    pytest.param(("hooks", 5, "id"), ("hooks",), id="index-out-of-range"),
])
def test_resolve_drops_parts_not_in_data(loc: tuple[str | int, ...],
                                         resolved: tuple[str | int, ...]) -> None:
    source, _ = parse_yaml(DOC, "f.yaml")
    assert source.resolve(loc) == resolved


def test_resolve_drops_validator_tags() -> None:
    source, _ = parse_yaml("hooks:\n  - id: a\n    auth: {type: bearer}\n", "t.yaml")
    assert source.resolve(("hooks", 0, "auth", "bearer", "token")) == (
        "hooks", 0, "auth", "token")
    assert source.issue(("hooks", 0, "auth", "bearer", "token"), "required key is missing") == (
        ConfigIssue("t.yaml", 3, "hooks[0].auth.token", "required key is missing"))
    assert parse_yaml("", "empty.yaml")[0].line_of(("a",)) is None


def test_issue_is_located() -> None:
    source, _ = parse_yaml(DOC, "f.yaml")
    assert source.issue(("hooks", 1, "request"), "required key is missing") == ConfigIssue(
        "f.yaml", 9, "hooks[1].request", "required key is missing")


@pytest.mark.parametrize(("loc", "text"), [
    pytest.param((), "", id="root"),
    pytest.param(("kafka",), "kafka", id="key"),
    pytest.param(("hooks", 3, "request", "url"), "hooks[3].request.url", id="index-and-keys"),
    pytest.param(("a", 0, 1), "a[0][1]", id="nested-lists"),
])
def test_format_loc(loc: tuple[str | int, ...], text: str) -> None:
    assert format_loc(loc) == text


@pytest.mark.parametrize(("text", "line", "message"), [
    pytest.param("a: [1, 2\nb: 3\n", 2, "YAML syntax: while parsing a flow sequence",
                 id="unclosed-flow"),
    pytest.param("a:\n  b: 1\n   c: 2\n", 3, "YAML syntax: mapping values are not allowed here",
                 id="bad-indent"),
    pytest.param("a: 1\nb: *nope\n", 2, "YAML syntax: found undefined alias 'nope'",
                 id="undefined-alias"),
    pytest.param("a: 1\n---\nb: 2\n", 2, "YAML syntax: expected a single document",
                 id="two-documents"),
    pytest.param("a:\n\t- 1\n", 2, "YAML syntax: while scanning for the next token found "
                 "character '\\t' that cannot start any token", id="tab"),
])
def test_syntax_errors_are_located(text: str, line: int, message: str) -> None:
    source, issues = parse_yaml(text, "bad.yaml")
    assert source.data is None
    assert len(issues) == 1
    assert (issues[0].file, issues[0].line, issues[0].path) == ("bad.yaml", line, "")
    assert issues[0].message.startswith(message), issues[0].message


def test_duplicate_keys_are_reported_and_last_wins() -> None:
    source, issues = parse_yaml("a:\n  x: 1\n  y: 2\n  x: 3\nb: 1\nb: 2\n", "d.yaml")
    assert [str(i) for i in issues] == ["d.yaml:4: a.x: duplicate key",
                                        "d.yaml:6: b: duplicate key"]
    assert source.data == {"a": {"x": 3, "y": 2}, "b": 2}


def test_non_scalar_key() -> None:
    _, issues = parse_yaml("a:\n  ? [1, 2]\n  : v\n", "k.yaml")
    assert [str(i) for i in issues] == ["k.yaml:2: a: mapping keys must be scalars"]


def test_merge_keys_and_aliases() -> None:
    source, issues = parse_yaml(dedent("""
        base: &base {method: POST, timeout: 5s}
        hook:
          <<: *base
          url: http://x/
        """), "m.yaml")
    assert issues == []
    assert source.data["hook"] == {"method": "POST", "timeout": "5s", "url": "http://x/"}


def test_empty_document() -> None:
    source, issues = parse_yaml("# only a comment\n", "e.yaml")
    assert (source.data, issues) == (None, [])


def test_load_yaml_file(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("a: 1\n")
    source, issues = load_yaml_file(good)
    assert (source.file, source.data, issues) == (str(good), {"a": 1}, [])

    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"a: \xff\n")
    source, issues = load_yaml_file(binary)
    assert source == Source(str(binary), None)
    assert len(issues) == 1 and issues[0].file == str(binary) and issues[0].line is None
    assert issues[0].message.startswith("cannot read: ")

    _, issues = load_yaml_file(tmp_path / "absent.yaml")
    assert issues[0].message.startswith("cannot read: ") and "No such file" in issues[0].message
