"""YAML loading that remembers where every value came from (file and line)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hookd.errors import ConfigIssue

Loc = tuple[str | int, ...]


@dataclass
class Source:
    """A parsed YAML document plus the line of every key/item in it (1-based)."""

    file: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest prefix of `loc` that exists in the document."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return line
        return None

    def resolve(self, loc: tuple[Any, ...]) -> Loc:
        """Keep the parts of a validator's error location that exist in the data.

        Validators add names of their own (union members, tags); dropping what is not
        a real key lets us find the YAML node. A final missing key is kept.
        """
        node: Any = self.data
        found: list[str | int] = []
        for i, part in enumerate(loc):
            in_dict = isinstance(node, dict) and part in node
            if in_dict or (isinstance(node, list) and isinstance(part, int)
                           and 0 <= part < len(node)):
                found.append(part)
                node = node[part]
            elif i == len(loc) - 1 and isinstance(part, str) and isinstance(node, dict):
                found.append(part)  # a missing required key
        return tuple(found)

    def issue(self, loc: tuple[Any, ...], message: str) -> ConfigIssue:
        real = self.resolve(loc)
        return ConfigIssue(self.file, self.line_of(real), format_loc(real), message)


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Loader(yaml.SafeLoader):
    pass


def _build(loader: _Loader, node: yaml.Node, loc: Loc, lines: dict[Loc, int],
           issues: list[ConfigIssue], file: str) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) and key is not None:
                issues.append(ConfigIssue(file, key_node.start_mark.line + 1,
                                          format_loc(loc), "mapping keys must be scalars"))
                continue
            if key in out:
                issues.append(ConfigIssue(file, key_node.start_mark.line + 1,
                                          format_loc((*loc, str(key))), "duplicate key"))
            child: Loc = (*loc, key if isinstance(key, str | int) else str(key))
            lines[child] = key_node.start_mark.line + 1
            out[key] = _build(loader, value_node, child, lines, issues, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*loc, i), lines, issues, file)
                for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, file: str) -> tuple[Source, list[ConfigIssue]]:
    """Parse one YAML document; syntax errors come back as located issues."""
    issues: list[ConfigIssue] = []
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines: dict[Loc, int] = {}
        data = None if node is None else _build(loader, node, (), lines, issues, file)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        msg = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        return Source(file, None), [ConfigIssue(file, line, "", f"YAML syntax: {msg}")]
    except yaml.YAMLError as exc:
        return Source(file, None), [ConfigIssue(file, None, "", f"YAML: {exc}")]
    finally:
        loader.dispose()
    return Source(file, data, lines), issues


def load_yaml_file(path: Path) -> tuple[Source, list[ConfigIssue]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Source(str(path), None), [ConfigIssue(str(path), None, "", f"cannot read: {exc}")]
    return parse_yaml(text, str(path))
