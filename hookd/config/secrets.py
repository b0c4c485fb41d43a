"""`${env:NAME}`, `${file:PATH}` and `${cred:NAME}` substitution at config load."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hookd.errors import SpecError

_REF = re.compile(r"\$\{(env|file|cred):([^}]*)\}")
# where a substituted value is a name, not a secret: it is shown in logs and on /readyz
# (masking "hookd-web1-8081" in every line would hide which process wrote it, and a short
# value such as a host name would be masked wherever else it appears)
NOT_SECRET: frozenset[tuple[str | int, ...]] = frozenset({("kafka", "group_instance_id")})


@dataclass
class SecretResolver:
    """Replaces secret references in strings and remembers every value it produced.

    The remembered values feed log redaction: a secret never leaves in a log line.
    """

    base_dir: Path
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    found: set[str] = field(default_factory=set)

    def _lookup(self, kind: str, name: str) -> str:
        if not name:
            raise SpecError(f"empty name in ${{{kind}:}}")
        if kind == "env":
            if name not in self.environ:
                raise SpecError(f"environment variable {name} is not set")
            return self.environ[name]
        if kind == "cred":
            cred_dir = self.environ.get("CREDENTIALS_DIRECTORY")
            if not cred_dir:
                raise SpecError(f"${{cred:{name}}} needs $CREDENTIALS_DIRECTORY "
                                "(systemd LoadCredential=)")
            if "/" in name or name in (".", ".."):  # a credential is a name, not a path
                raise SpecError(f"credential name {name!r} is not a plain name")
            path = Path(cred_dir) / name
        else:
            path = Path(name) if Path(name).is_absolute() else self.base_dir / name
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: NUL in name
            raise SpecError(f"cannot read secret {kind}:{name}: {exc.__class__.__name__}") from None

    def substitute(self, text: str, secret: bool = True) -> str:
        """`secret=False`: the values are not remembered (not masked in logs)."""
        def repl(m: re.Match[str]) -> str:
            value = self._lookup(m.group(1), m.group(2))
            if value and secret:
                self.found.add(value)
            return value

        return _REF.sub(repl, text)

    def walk(self, data: Any, loc: tuple[str | int, ...] = ()) -> tuple[Any, list[SpecError]]:
        """Substitute in every string of a YAML tree; errors carry their location."""
        errors: list[SpecError] = []
        if isinstance(data, str):
            try:
                return self.substitute(data, loc not in NOT_SECRET), errors
            except SpecError as exc:
                return data, [SpecError(exc.message, loc)]
        if isinstance(data, dict):
            out = {}
            for key, value in data.items():
                out[key], errs = self.walk(value, (*loc, key))
                errors += errs
            return out, errors
        if isinstance(data, list):
            items = []
            for i, value in enumerate(data):
                item, errs = self.walk(value, (*loc, i))
                items.append(item)
                errors += errs
            return items, errors
        return data, errors
