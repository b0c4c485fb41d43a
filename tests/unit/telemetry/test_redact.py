"""Secrets never leave in anything hookd prints."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookd.telemetry.redact import MASK, Redactor


@pytest.mark.parametrize(("secrets", "text", "expected"), [
    pytest.param({"s3cr3t-token"}, "Authorization: Bearer s3cr3t-token",
                 "Authorization: Bearer ***", id="secret"),
    pytest.param({"abcd", "abcdef"}, "key=abcdef and abcd", "key=*** and ***",
                 id="longest-first"),
    pytest.param({"a.b*c"}, "x a.b*c y aXbbc", "x *** y aXbbc", id="regex-characters-literal"),
    pytest.param({"abc"}, "abc stays", "abc stays", id="too-short-to-redact"),
    pytest.param({"tok"}, "no secret here", "no secret here", id="absent"),
    pytest.param(set(), "https://user:pw@crm.example.com/x", "https://***@crm.example.com/x",
                 id="url-userinfo"),
    pytest.param(set(), "http://token@host:8080/p and ftp://a:b@c/", "http://***@host:8080/p "
                 "and ftp://***@c/", id="url-userinfo-several"),
    pytest.param(set(), "mail dana@example.com", "mail dana@example.com", id="email-untouched"),
    pytest.param({"pw-1234"}, "https://u:pw-1234@h/?k=pw-1234", "https://***@h/?k=***",
                 id="userinfo-and-query"),
])
def test_redact_text(secrets: set[str], text: str, expected: str) -> None:
    assert Redactor(secrets)(text) == expected


def test_redact_nested_values() -> None:
    redact = Redactor({"hunter22"})
    value: dict[str, Any] = {"a": "x hunter22", "n": 5, "l": ["hunter22", ("hunter22", None)],
                             "d": {"url": "https://u:p@h/"}}
    assert redact.value(value) == {"a": "x ***", "n": 5, "l": ["***", ["***", None]],
                                   "d": {"url": "https://***@h/"}}
    assert value["a"] == "x hunter22"


def _reference(secrets: set[str], text: str) -> str:
    """The former implementation: one regex alternation, longest secret first."""
    import re

    ordered = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
    text = re.sub(r"(?<=://)[^/@\s]+@", MASK + "@", text)
    if not ordered:
        return text
    return re.compile("|".join(map(re.escape, ordered))).sub(MASK, text)


@given(st.sets(st.text("abcd:/@", min_size=1, max_size=6), max_size=8),
       st.text("abcd:/@ x", max_size=40))
def test_same_masking_as_a_regex_alternation(secrets: set[str], text: str) -> None:
    assert Redactor(secrets)(text) == _reference(secrets, text)


def test_thousands_of_secrets() -> None:
    many = {f"token-{n:05d}-{'k' * (n % 7)}" for n in range(3000)}
    redactor = Redactor(many)
    line = "sent with token-01234-kkkk and token-02999-kkkkkk, not token-9"
    assert redactor(line) == _reference(many, line)
    assert "token-01234" not in redactor(line)


@pytest.mark.parametrize(("secrets", "text", "expected"), [
    pytest.param({"ak_live_0123456789"}, "x-api-key: ak_live_0123456789",
                 "x-api-key: ak_l…(redacted)", id="keeps-four"),
    pytest.param({"short-pw"}, "pw short-pw", "pw sh…(redacted)", id="at-most-a-quarter"),
    pytest.param({"abcd"}, "abcd", "a…(redacted)", id="four-shows-one"),
    pytest.param({"tok+en/with=sign"}, "https://h/x?t=tok%2Ben/with%3Dsign&u=1",
                 "https://h/x?t=tok%…(redacted)&u=1", id="query-encoded"),
    pytest.param({"tok en/x"}, "https://h/p/tok%20en%2Fx?q=tok+en/x",
                 "https://h/p/tok…(redacted)?q=to…(redacted)", id="path-and-form-encoded"),
])
def test_redact_keeping_the_first_characters(secrets: set[str], text: str,
                                             expected: str) -> None:
    assert Redactor(secrets, keep=4)(text) == expected


def test_encoded_secrets_are_masked_in_logs_too() -> None:
    assert Redactor({"a+b/c=d"})("GET /x?k=a%2Bb/c%3Dd") == "GET /x?k=***"


def test_touches_is_any_secret_form_or_an_at_sign() -> None:
    assert Redactor().touches(b'{"url":"https://u:p@h/"}')  # no secrets: '@' alone
    assert not Redactor().touches(b'{"url":"https://h/"}')
    assert Redactor(["pw-1234"]).touches(b'{"url":"https://h/?k=pw-1234"}')
    assert not Redactor(["pw-1234"]).touches(b'{"url":"https://h/?k=pw-123"}')
