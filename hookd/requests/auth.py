"""Authentication headers a hook adds to each request."""

from __future__ import annotations

import base64

from hookd.config import ApiKeyAuth, Auth, BasicAuth, BearerAuth, OAuth2Auth

Headers = tuple[tuple[str, str], ...]


def _basic_token(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def basic_authorization(user: str, password: str) -> str:
    """The value of an `Authorization: Basic` header."""
    return "Basic " + _basic_token(user, password)


def static_auth_headers(auth: Auth | None) -> Headers:
    """Headers fixed at load time; OAuth2 tokens are fetched at send time instead."""
    match auth:
        case ApiKeyAuth(header=header, value=value):
            return ((header, value),)
        case BasicAuth(username=user, password=password):
            return (("authorization", basic_authorization(user, password)),)
        case BearerAuth(token=token):
            return (("authorization", f"Bearer {token}"),)
        case OAuth2Auth() | None:
            return ()
    raise AssertionError(f"unhandled auth {auth!r}")  # pragma: no cover


def auth_secrets(auth: Auth | None) -> set[str]:
    """Values that must never be logged."""
    match auth:
        case ApiKeyAuth(value=value):
            return {value}
        case BasicAuth(username=user, password=password):
            # the header carries base64(user:password), which is as secret as the password
            return {password, _basic_token(user, password)} if password else set()
        case BearerAuth(token=token):
            return {token}
        case OAuth2Auth(client_secret=secret):
            return {secret}
    return set()
