"""The `hookd` command line: its parser and `check`, `render`, `schema` (`commands`),
`hookd status` (`status`), `hookd check --connect` (`doctor`), `hookd replay` (`replay`),
`hookd send` (`send`).
`main` is the package's face: the console script `hookd = hookd.cli:main`."""

from hookd.cli.commands import main

__all__ = ["main"]
