"""Every exception hookd raises on purpose, one line of reason each."""

from __future__ import annotations

from dataclasses import dataclass

# sysexits.h's EX_CONFIG: the exit status of `hookd run` and `hookd check` (and every command
# that loads the config) on an invalid config; hookd.service does not restart on it
EX_CONFIG = 78


class HookdError(Exception):
    """Base of every error hookd raises deliberately."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in the configuration, located in its source file."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(HookdError):
    """The configuration is invalid; carries every issue found, not just the first."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class SpecError(HookdError):
    """A value inside the config (filter, duration, secret, template) is malformed.

    Raised by the compilers; the config loader turns it into a located ConfigIssue.
    `path` is relative to the value being compiled.
    """

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        self.message = message
        self.path = path
        super().__init__(message)


class DecodeError(HookdError):
    """A Kafka record is not a decodable event (not UTF-8, not JSON, no name...)."""


class RenderError(HookdError):
    """A hook's request could not be rendered for an event (undefined name, bad header...)."""


class BlockedDestination(HookdError):
    """The SSRF guard refused the destination address."""
