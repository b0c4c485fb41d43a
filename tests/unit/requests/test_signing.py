"""Standard Webhooks signatures, verified with the reference `standardwebhooks` library."""

from __future__ import annotations

import time
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hookd.config import HookConfig
from hookd.events.decode import Event, Meta
from hookd.requests.compile import compile_hook
from hookd.requests.render import CompiledHook
from hookd.requests.signing import Signer, webhook_id

SECRET = "whsec_g4dtUC07hnLrHs7aZYFDyBOph50j11SE"
NEW = "whsec_YnnJt5Ej0ZVGmQdbR6jeQwCRZIfEfRFX"
OLD = "whsec_Wo0t8H//vZeveuDBb0mRkOprKweTe1T9"
OTHER = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PAYLOAD = {"event": "Answered", "id": "evt-1", "member_call_id": "m-91d2", "agent": "Dana"}


def signed_hook(secret: str | list[str], hook_id: str = "crm") -> CompiledHook:
    config = HookConfig.model_validate({
        "id": hook_id, "event": "Answered", "signing": {"secret": secret},
        "request": {"url": "https://crm.example.com/calls",
                    "body": '{"call": {{ member_call_id|tojson }}, "agent": {{ agent|tojson }}}'}})
    hook, errors = compile_hook(config, 10.0, ())
    assert errors == [] and hook is not None
    return hook


def event(event_id: str = "evt-1") -> Event:
    return Event("Answered", event_id, PAYLOAD, Meta("cc.events", 0, 1))


def signed_request(hook: CompiledHook) -> tuple[bytes, dict[str, str]]:
    req = hook.render(event())
    return req.body, req.signed_headers(hook.signer, int(time.time()))


def test_single_secret_verifies() -> None:
    body, headers = signed_request(signed_hook(SECRET))
    assert Webhook(SECRET).verify(body, headers) == {"call": "m-91d2", "agent": "Dana"}
    assert headers["webhook-signature"].startswith("v1,")
    assert " " not in headers["webhook-signature"]


@pytest.mark.parametrize("secret", [NEW, OLD], ids=["new-secret", "old-secret"])
def test_rotation_signs_with_every_secret(secret: str) -> None:
    body, headers = signed_request(signed_hook([NEW, OLD]))
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(secret).verify(body, headers) == {"call": "m-91d2", "agent": "Dana"}


def test_unprefixed_secret_is_the_same_key() -> None:
    body, headers = signed_request(signed_hook(SECRET.removeprefix("whsec_")))
    Webhook(SECRET).verify(body, headers)


@pytest.mark.parametrize(("tamper", "secret"), [
    pytest.param(lambda b, h: (b.replace(b"Dana", b"Eve!"), h), SECRET, id="body"),
    pytest.param(lambda b, h: (b + b" ", h), SECRET, id="body-trailing-space"),
    pytest.param(lambda b, h: (b, {**h, "webhook-id": "msg_other"}), SECRET, id="webhook-id"),
    pytest.param(lambda b, h: (b, {**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) + 1)}),
                 SECRET, id="timestamp"),
    pytest.param(lambda b, h: (b, h), OTHER, id="wrong-secret"),
])
def test_tampering_fails_verification(tamper: Any, secret: str) -> None:
    body, headers = tamper(*signed_request(signed_hook(SECRET)))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)


def test_old_timestamp_fails_verification() -> None:
    hook = signed_hook(SECRET)
    req = hook.render(event())
    headers = req.signed_headers(hook.signer, int(time.time()) - 3600)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(req.body, headers)


def test_known_signature() -> None:
    """Independent of the library: HMAC-SHA256 over `id.timestamp.body`, base64 (spec example)."""
    signer = Signer.from_secrets(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
    assert signer.signature("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                            b'{"test": 2432232314}') == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")


def test_webhook_id_is_stable_per_event_and_hook() -> None:
    first = signed_hook(SECRET, "crm").render(event("evt-1")).webhook_id
    assert first == signed_hook(OLD, "crm").render(event("evt-1")).webhook_id  # retry/reload
    assert first == webhook_id("evt-1", "crm")
    assert first.startswith("msg_") and len(first) == 36
    others = {webhook_id("evt-1", "billing"), webhook_id("evt-2", "crm"),
              webhook_id("evt-1crm", ""), webhook_id("evt-", "1crm")}
    assert first not in others
    assert len(others) == 4


def test_headers_carry_the_webhook_id() -> None:
    hook = signed_hook(SECRET)
    req = hook.render(event())
    headers = req.signed_headers(hook.signer, 1_700_000_000)
    assert headers["webhook-id"] == webhook_id("evt-1", "crm")
    assert headers["webhook-timestamp"] == "1700000000"


@pytest.mark.parametrize("key", [b"", b"k", b"k" * 24, b"k" * 64, b"k" * 65, bytes(range(200))],
                         ids=["empty", "1", "24", "block", "block+1", "200"])
def test_signatures_are_the_hmac_of_the_standard_library(key: bytes) -> None:
    """The inner and outer hashes keyed once are HMAC-SHA256 (RFC 2104) for any key
    length: empty, shorter than a block, a block, longer (then the key's hash is the key)."""
    import base64
    import hashlib
    import hmac

    body = b'{"a": 1}' * 20
    expected = hmac.new(key, b"msg_1.1700000000." + body, hashlib.sha256).digest()
    assert Signer((key,)).signature("msg_1", 1_700_000_000, body) == (
        "v1," + base64.b64encode(expected).decode())


def test_a_signer_signs_the_same_after_many_messages() -> None:
    """Each message copies the keyed hashes: nothing of one message stays for the next."""
    signer = Signer((b"k" * 32, b"other"))
    first = signer.signature("msg_1", 1_700_000_000, b"{}")
    for n in range(3):
        signer.signature(f"msg_{n}", n, b"x" * n)
    assert signer.signature("msg_1", 1_700_000_000, b"{}") == first
