"""OAuth2 client credentials: tokens fetched once, cached until shortly before expiry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from hookd.config import OAuth2Auth
from hookd.errors import HookdError
from hookd.requests.proxy import Route

# (url, form, basic auth (user, password), timeout, the hook's proxy route)
#   -> (status, JSON body or None)
PostForm = Callable[[str, dict[str, str], tuple[str, str], float, Route | None],
                    Awaitable[tuple[int, Any]]]


class TokenError(HookdError):
    """The token endpoint did not give a usable token."""


class TokenCache:
    """One token per (token_url, client_id, scope); concurrent callers share one fetch."""

    def __init__(self, post: PostForm, margin: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.post, self.margin, self.clock = post, margin, clock
        self._tokens: dict[tuple[str, str, str | None], tuple[str, float]] = {}
        self._locks: dict[tuple[str, str, str | None], asyncio.Lock] = {}

    @staticmethod
    def _key(auth: OAuth2Auth) -> tuple[str, str, str | None]:
        return (auth.token_url, auth.client_id, auth.scope)

    def invalidate(self, auth: OAuth2Auth) -> None:
        self._tokens.pop(self._key(auth), None)

    async def token(self, auth: OAuth2Auth, timeout: float = 10.0,
                    proxy: Route | None = None) -> str:
        """The cached token, or one fetched (through the hook's `proxy`, if any)."""
        key = self._key(auth)
        cached = self._tokens.get(key)
        if cached and cached[1] > self.clock():
            return cached[0]
        async with self._locks.setdefault(key, asyncio.Lock()):
            cached = self._tokens.get(key)
            if cached and cached[1] > self.clock():
                return cached[0]
            form = {"grant_type": "client_credentials"}
            if auth.scope:
                form["scope"] = auth.scope
            status, body = await self.post(auth.token_url, form,
                                           (auth.client_id, auth.client_secret), timeout, proxy)
            if status != 200 or not isinstance(body, dict) or not isinstance(
                    body.get("access_token"), str):
                raise TokenError(f"token endpoint answered {status}")
            expires_in = body.get("expires_in")
            lifetime = float(expires_in) if isinstance(expires_in, int | float) else 3600.0
            self._tokens[key] = (body["access_token"],
                                 self.clock() + max(0.0, lifetime - self.margin))
            return str(body["access_token"])
