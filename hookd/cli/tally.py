"""What a `hookd replay` found: its letters counted by hook, error kind and status, with
the span of their last attempts, and the lines that say so."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TextIO

from hookd.cli.selection import Facts
from hookd.kafka.deadletter import rfc3339


@dataclass
class _Row:
    letters: int = 0
    first: float | None = None
    last: float | None = None

    def add(self, at: float | None) -> None:
        self.letters += 1
        if at is not None:
            self.first = at if self.first is None else min(self.first, at)
            self.last = at if self.last is None else max(self.last, at)


@dataclass
class Tally:
    """Counts of one replay. `moved`: the letters replayed (or, dry, that would be)."""

    read: int = 0  # every record of the dead-letter topic read
    before: int = 0  # selected, but moved by an earlier replay (the ledger holds them)
    skipped: int = 0  # selected, but they cannot be replayed (said why, one line each)
    rows: dict[tuple[str, str, str], _Row] = field(default_factory=dict)
    span: _Row = field(default_factory=_Row)

    @property
    def moved(self) -> int:
        return self.span.letters

    def add(self, facts: Facts) -> None:
        key = (facts.hook or "-", facts.kind or "-",
               "-" if facts.status is None else str(facts.status))
        self.rows.setdefault(key, _Row()).add(facts.at)
        self.span.add(facts.at)

    def print(self, dry_run: bool, out: TextIO) -> None:
        verb = "would replay" if dry_run else "replayed"
        if self.rows:
            table = [("HOOK", "KIND", "STATUS", "LETTERS", "LAST ATTEMPTS (UTC)")]
            table += [(*key, str(row.letters), _span(row))
                      for key, row in sorted(self.rows.items())]
            widths = [max(len(r[i]) for r in table) for i in range(4)]
            for r in table:
                cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1]),
                         r[2].ljust(widths[2]), r[3].rjust(widths[3])]
                print("  ".join([*cells, r[4]]).rstrip(), file=out)
            print(f"last attempts from {_span(self.span)}", file=out)
        print(f"{verb} {self.moved} dead letter(s), {self.before} replayed before, "
              f"skipped {self.skipped} ({self.read} read)", file=out)


def _span(row: _Row) -> str:
    if row.first is None or row.last is None:
        return "-"
    return f"{rfc3339(row.first)} to {rfc3339(row.last)}"
