"""Standard Webhooks signing: `webhook-id`, `webhook-timestamp`, `webhook-signature`."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from hookd.config import signing_key


def webhook_id(event_id: str, hook_id: str) -> str:
    """Stable per (event, hook): identical on every retry and after a redelivery."""
    digest = hashlib.sha256(f"{event_id}\x00{hook_id}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


@dataclass(frozen=True)
class Signer:
    """Signs with every configured key (several during a secret rotation)."""

    keys: tuple[bytes, ...]

    @classmethod
    def from_secrets(cls, secrets: Sequence[str]) -> Signer:
        return cls(tuple(signing_key(s) for s in secrets))

    def signature(self, msg_id: str, timestamp: int, body: bytes) -> str:
        signed = f"{msg_id}.{timestamp}.".encode() + body
        return " ".join(
            "v1," + base64.b64encode(hmac.digest(key, signed, "sha256")).decode()
            for key in self.keys
        )
