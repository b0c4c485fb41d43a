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

from hookd.config.proxies import HookProxy
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
    """The HTTP request a hook sends for each matching event."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    """The HTTP method (any case). A GET has no body: use `query` or `fields`."""
    url: NonEmptyStr
    """A template; each `{{ ... }}` is percent-encoded for where it stands (path segment,
    query value, host), so event data cannot rewrite the URL. `|url_raw` as the last
    filter marks a trusted value as URL syntax."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers; the values are templates. A rendered value holding CR, LF or NUL is
    refused."""
    query: dict[str, str] = Field(default_factory=dict)
    """Query parameters added to the URL, each name and value encoded; the values are
    templates."""
    body: str | None = None
    """A Jinja2 template of the body. With a JSON content type it must render valid JSON
    (use `|tojson` for values)."""
    raw_body: str | None = None
    """A body with `${field}` substitution, as older systems write it (string values are
    JSON-escaped inside JSON). Not with `body`."""
    fields: list[NonEmptyStr] | None = None
    """No `body` given: the payload as JSON with only these fields (for GET: as query
    parameters). Unset: the whole payload."""
    map: dict[str, NonEmptyStr] = Field(default_factory=dict)
    """No `body` given: rename payload fields in the default body (`{old: new}`)."""
    content_type: NonEmptyStr = "application/json"
    """The `content-type` header sent."""
    timeout: Duration | None = None
    """This hook's per-attempt timeout; unset: `delivery.timeout`."""

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
    """A key sent in a header of each request."""

    type: Literal["api_key"]
    """`api_key`."""
    header: NonEmptyStr = "x-api-key"
    """The header that carries the key."""
    value: NonEmptyStr
    """The key: a secret reference such as `${cred:crm_key}`."""

    @field_validator("header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not HEADER_NAME.match(value):
            raise ValueError(f"invalid header name {value!r}")
        return value


class BasicAuth(Model):
    """HTTP basic authentication."""

    type: Literal["basic"]
    """`basic`."""
    username: str
    """The user name."""
    password: str
    """The password: a secret reference such as `${env:LEGACY_PASSWORD}`."""


class BearerAuth(Model):
    """A fixed token in `authorization: Bearer ...`."""

    type: Literal["bearer"]
    """`bearer`."""
    token: NonEmptyStr
    """The token: a secret reference such as `${cred:crm_token}`."""


class OAuth2Auth(Model):
    """OAuth2 client credentials: a token fetched from `token_url`, cached until shortly
    before it expires, fetched again once on a 401."""

    type: Literal["oauth2"]
    """`oauth2`."""
    token_url: NonEmptyStr
    """The token endpoint (checked by the SSRF guard like any destination)."""
    client_id: NonEmptyStr
    """The client id."""
    client_secret: NonEmptyStr
    """The client secret: a secret reference such as `${cred:partner_secret}`."""
    scope: str | None = None
    """The scope asked for; unset: none."""


Auth = Annotated[ApiKeyAuth | BasicAuth | BearerAuth | OAuth2Auth, Field(discriminator="type")]


class TlsConfig(Model):
    """TLS towards this hook's endpoint (https URLs)."""

    verify: bool = True
    """Check the endpoint's certificate and host name. Turn off only for a test endpoint."""
    ca_file: str | None = None
    """PEM file of a private CA that signed the endpoint's certificate; unset: the
    system's CAs."""
    cert_file: str | None = None
    """PEM client certificate for mutual TLS."""
    key_file: str | None = None
    """PEM private key of `cert_file` (needs `cert_file`)."""

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
    """Standard Webhooks signing: `webhook-signature: v1,<base64 HMAC-SHA256 of
    id.timestamp.body>`."""

    secret: Annotated[list[NonEmptyStr], BeforeValidator(as_list), Field(min_length=1)]
    """`whsec_` + base64 (at least 16 bytes of key), or a list: each signs, so a receiver
    can move to a new secret while the old one still verifies (rotation)."""

    @field_validator("secret")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        for secret in value:
            signing_key(secret)
        return value


class HookRetry(Model):
    """This hook's own retry schedule."""

    schedule: list[Duration]
    """Delays between attempts, instead of `delivery.retry.schedule` (jitter and
    `inline_max` still come from `delivery.retry`)."""


class HookConfig(Model):
    """One hook, in the main file's `hooks:` list or a `hooks_dir` file's: which events it
    takes, and the request it sends for each."""

    id: Annotated[str, Field(pattern=HOOK_ID)]
    """Unique across all files; part of each delivery's `webhook-id`, the label of its
    metrics and the key of `hookd replay --hook`."""
    description: str = ""
    """Free text, seen by templates as `hook.description`."""
    enabled: bool = True
    """`false`: the hook matches nothing (its parked deliveries are dropped when due)."""
    event: Annotated[list[NonEmptyStr], BeforeValidator(as_list), Field(min_length=1)]
    """An event name, a glob (`Call:*`) or a list of them; matched case-insensitively."""
    filter: dict[str, Any] | None = None
    """Conditions on the payload, all of which must hold: `path: value` (equality) or
    `path: {op: operand}` with ops eq ne in nin gt gte lt lte regex exists, combined
    with `any`, `all`, `not`; paths are dotted."""
    request: RequestConfig
    """The request to send."""
    auth: Auth | None = None
    """How the request authenticates, chosen by `type`."""
    tls: TlsConfig | None = None
    """TLS settings for this hook's endpoint."""
    signing: SigningConfig | None = None
    """Sign each request per Standard Webhooks."""
    retry: HookRetry | None = None
    """This hook's retry schedule instead of `delivery.retry.schedule`."""
    rate_limit: RateLimit | None = None  # parsed once: limit per period
    """At most this many requests per period for this hook (`50/s`, `600/m`)."""
    trace_context: bool = True
    """Send the event's W3C `traceparent`/`tracestate` (from the record's headers or its
    CloudEvent) on as request headers, unchanged. `false`: not sent (templates still read
    them as `trace`). A hook whose `headers` set either name sends its own instead."""
    proxy: HookProxy | None = None
    """This hook's HTTP proxy, `http://[user:password@]host:port`, instead of
    `delivery.proxy`; `none`: straight to the endpoint. `delivery.no_proxy` applies
    either way. Unset: `delivery.proxy`."""


class HooksFile(Model):
    """A file in hooks_dir."""

    hooks: list[HookConfig] = Field(default_factory=list)
    """The hooks of this file."""
