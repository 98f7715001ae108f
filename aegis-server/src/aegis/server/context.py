"""The server's configuration and per-app state, and who the caller of a request is."""

from __future__ import annotations

from typing import Any

import attrs
from litestar.connection import ASGIConnection

from aegis.runtime.audit import AuditStore
from aegis.runtime.engine import Runtime
from aegis.server.auth import ANONYMOUS, ApiKey, KeyRing, Sessions
from aegis.server.errors import ApiError
from aegis.server.ratelimit import RateUnknown, SharedRateLimiter
from aegis.server.service import Service

SESSION_COOKIE = "aegis_session"
Connection = ASGIConnection[Any, Any, Any, Any]
#: A signed-in dashboard user: the key they signed in with, and their session cookie.
Session = tuple[ApiKey, str]


@attrs.frozen
class ServerConfig:
    max_body_bytes: int = 1_000_000
    max_batch: int = 1000
    rate_per_key: float = 0.0  # requests/s per key, all replicas together; 0 = unlimited
    secure_cookies: bool = False  # set when served over HTTPS
    outcome_timeout: float = 300.0
    policy_poll: float = 1.0  # how often a replica looks for a newer policy version
    notify: bool = True  # PostgreSQL LISTEN/NOTIFY wakes other replicas' waiters at once


@attrs.define
class Context:
    runtime: Runtime
    store: AuditStore
    service: Service
    keys: KeyRing
    sessions: Sessions
    limiter: SharedRateLimiter
    config: ServerConfig

    async def caller(self, request: Connection, *scopes: str) -> ApiKey:
        """The key behind ``Authorization: Bearer``; it must have one of ``scopes``."""
        return await self.caller_of(request.headers.get("authorization", ""), *scopes)

    async def caller_of(self, header: str, *scopes: str) -> ApiKey:
        """``caller`` from the ``Authorization`` header's value (the fast paths read it from
        the ASGI scope, without a request object)."""
        scheme, _, presented = header.partition(" ")
        if self.keys.open:
            key = ANONYMOUS
        elif scheme.lower() != "bearer" or not presented.strip():
            raise ApiError(
                401,
                "unauthorized",
                "send 'Authorization: Bearer KEY'",
                {"WWW-Authenticate": "Bearer"},
            )
        else:
            found = self.keys.lookup(presented.strip())
            if found is None:
                raise ApiError(
                    401, "unauthorized", "unknown API key", {"WWW-Authenticate": "Bearer"}
                )
            key = found
        if not any(key.allows(s) for s in scopes):
            raise ApiError(403, "forbidden", f"key {key.name!r} lacks scope {' or '.join(scopes)}")
        try:
            allowed = await self.limiter.allow(key.name)
        except RateUnknown as exc:
            raise ApiError(
                503,
                "rate limit unavailable",
                "the request counter cannot be read; nothing was done, retry later",
                {"Retry-After": "5"},
            ) from exc
        if not allowed:
            raise ApiError(
                429, "rate limited", f"key {key.name!r}: slow down", {"Retry-After": "1"}
            )
        return key


def context(request: Connection) -> Context:
    ctx: Context = request.app.state.aegis
    return ctx


def session_of(ctx: Context, request: Connection) -> Session | None:
    """The signed-in user behind the request's cookie (its key must still allow approve)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    name = ctx.sessions.verify(cookie)
    key = ctx.keys.named(name) if name else None
    if key is None or cookie is None or not key.allows("approve"):
        return None
    return key, cookie
