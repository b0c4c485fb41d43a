"""`${env:NAME}`, `${file:PATH}` and `${cred:NAME}` substitution."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookd.config.secrets import SecretResolver
from hookd.errors import SpecError


@pytest.fixture
def resolver(tmp_path: Path) -> SecretResolver:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token").write_text("file-token\n")
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "api_key").write_text("cred-api-key\r\n")
    return SecretResolver(tmp_path, {"TOKEN": "env-token", "EMPTY": "",
                                     "CREDENTIALS_DIRECTORY": str(tmp_path / "creds")})


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("${env:TOKEN}", "env-token", id="env"),
    pytest.param("${file:secrets/token}", "file-token", id="file-relative-newline-stripped"),
    pytest.param("${cred:api_key}", "cred-api-key", id="cred-crlf-stripped"),
    pytest.param("Bearer ${env:TOKEN}!", "Bearer env-token!", id="embedded"),
    pytest.param("${env:TOKEN}:${cred:api_key}", "env-token:cred-api-key", id="several"),
    pytest.param("${env:EMPTY}", "", id="empty-value"),
    pytest.param("no reference $TOKEN {env:TOKEN}", "no reference $TOKEN {env:TOKEN}",
                 id="no-reference"),
    pytest.param("${other:TOKEN}", "${other:TOKEN}", id="unknown-kind-left-alone"),
])
def test_substitute(resolver: SecretResolver, text: str, expected: str) -> None:
    assert resolver.substitute(text) == expected


def test_found_remembers_non_empty_values(resolver: SecretResolver) -> None:
    resolver.substitute("${env:TOKEN} ${env:EMPTY} ${cred:api_key}")
    assert resolver.found == {"env-token", "cred-api-key"}


def test_substituted_value_is_not_substituted_again(tmp_path: Path) -> None:
    resolver = SecretResolver(tmp_path, {"A": "${env:B}", "B": "leaked"})
    assert resolver.substitute("${env:A}") == "${env:B}"


def test_absolute_file(tmp_path: Path) -> None:
    secret = tmp_path / "abs"
    secret.write_text("absolute")
    assert SecretResolver(Path("/nonexistent"), {}).substitute(f"${{file:{secret}}}") == "absolute"


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("${env:NOPE}", "environment variable NOPE is not set", id="env-missing"),
    pytest.param("${file:secrets/nope}", "cannot read secret file:secrets/nope: FileNotFoundError",
                 id="file-missing"),
    pytest.param("${file:secrets}", "cannot read secret file:secrets: IsADirectoryError",
                 id="file-is-directory"),
    pytest.param("${file:secrets/binary}",
                 "cannot read secret file:secrets/binary: UnicodeDecodeError", id="file-not-utf8"),
    pytest.param("${cred:nope}", "cannot read secret cred:nope: FileNotFoundError",
                 id="cred-missing"),
    pytest.param("${env:}", "empty name in ${env:}", id="empty-name"),
    # the file exists (tmp_path/secrets/token): a credential name must not reach it
    pytest.param("${cred:../secrets/token}",
                 "credential name '../secrets/token' is not a plain name", id="cred-traversal"),
    pytest.param("${cred:..}", "credential name '..' is not a plain name", id="cred-dot-dot"),
])
def test_substitute_errors(resolver: SecretResolver, tmp_path: Path, text: str,
                           message: str) -> None:
    (tmp_path / "secrets" / "binary").write_bytes(b"\xff\xfe")
    with pytest.raises(SpecError) as caught:
        resolver.substitute(text)
    assert caught.value.message == message


def test_cred_needs_credentials_directory(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        SecretResolver(tmp_path, {}).substitute("${cred:api_key}")
    assert caught.value.message == (
        "${cred:api_key} needs $CREDENTIALS_DIRECTORY (systemd LoadCredential=)")


def test_walk_substitutes_everywhere_and_locates_errors(resolver: SecretResolver) -> None:
    data = {"a": "${env:TOKEN}", "n": 5, "flag": True, "none": None,
            "list": ["x", "${env:NOPE}", {"deep": "${cred:api_key}"}],
            "b": {"c": "${file:missing}"}}
    out, errors = resolver.walk(data)
    assert out == {"a": "env-token", "n": 5, "flag": True, "none": None,
                   "list": ["x", "${env:NOPE}", {"deep": "cred-api-key"}],
                   "b": {"c": "${file:missing}"}}
    assert [(e.path, e.message) for e in errors] == [
        (("list", 1), "environment variable NOPE is not set"),
        (("b", "c"), "cannot read secret file:missing: FileNotFoundError"),
    ]
    assert data["a"] == "${env:TOKEN}"  # the input is not modified
