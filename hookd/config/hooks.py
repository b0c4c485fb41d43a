"""A hook: what it matches, the request it renders, its auth, TLS, signing and retries."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from hookd.config.types import (
    HEADER_NAME,
    HOOK_ID,
    Duration,
    Model,
    NonEmptyStr,
    RateLimit,
    as_list,
)


class RequestConfig(Model):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: NonEmptyStr
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    raw_body: str | None = None
    fields: list[NonEmptyStr] | None = None
    map: dict[str, NonEmptyStr] = Field(default_factory=dict)
    content_type: NonEmptyStr = "application/json"
    timeout: Duration | None = None

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not HEADER_NAME.match(name):
                raise ValueError(f"invalid header name {name!r}")
        return value

    @model_validator(mode="after")
    def _one_body(self) -> RequestConfig:
        given = [k for k in ("body", "raw_body") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError("give either body or raw_body, not both")
        if given and (self.fields is not None or self.map):
            raise ValueError(f"fields/map shape the default body; they cannot go with {given[0]}")
        if self.method == "GET" and given:
            raise ValueError("a GET request has no body; use query or fields")
        return self


class ApiKeyAuth(Model):
    type: Literal["api_key"]
    header: NonEmptyStr = "x-api-key"
    value: NonEmptyStr

    @field_validator("header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not HEADER_NAME.match(value):
            raise ValueError(f"invalid header name {value!r}")
        return value


class BasicAuth(Model):
    type: Literal["basic"]
    username: str
    password: str


class BearerAuth(Model):
    type: Literal["bearer"]
    token: NonEmptyStr


class OAuth2Auth(Model):
    type: Literal["oauth2"]
    token_url: NonEmptyStr
    client_id: NonEmptyStr
    client_secret: NonEmptyStr
    scope: str | None = None


Auth = Annotated[ApiKeyAuth | BasicAuth | BearerAuth | OAuth2Auth, Field(discriminator="type")]


class TlsConfig(Model):
    verify: bool = True
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if self.key_file and not self.cert_file:
            raise ValueError("key_file needs cert_file")
        return self


def signing_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (`whsec_` + base64, prefix optional)."""
    raw = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("signing secret must be base64, optionally prefixed whsec_") from None
    if len(key) < 16:
        raise ValueError("signing secret is too short (need at least 16 bytes of key)")
    return key


class SigningConfig(Model):
    secret: Annotated[list[NonEmptyStr], BeforeValidator(as_list), Field(min_length=1)]

    @field_validator("secret")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        for secret in value:
            signing_key(secret)
        return value


class HookRetry(Model):
    schedule: list[Duration]


class HookConfig(Model):
    id: Annotated[str, Field(pattern=HOOK_ID)]
    description: str = ""
    enabled: bool = True
    event: Annotated[list[NonEmptyStr], BeforeValidator(as_list), Field(min_length=1)]
    filter: dict[str, Any] | None = None
    request: RequestConfig
    auth: Auth | None = None
    tls: TlsConfig | None = None
    signing: SigningConfig | None = None
    retry: HookRetry | None = None
    rate_limit: RateLimit | None = None  # parsed once: limit per period


class HooksFile(Model):
    """A file in hooks_dir."""

    hooks: list[HookConfig] = Field(default_factory=list)
