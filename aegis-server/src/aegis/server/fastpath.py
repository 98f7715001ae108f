"""``POST /api/v1/execute`` and ``/api/v1/evaluate`` answered straight from ASGI, in front of
Litestar's router: the agents' hot calls, made thousands of times a second.

Litestar's per-request machinery (a ``Request``, its state, the route's kwargs and signature
models, a ``Response`` rendered through its encoder) cost as much CPU as deciding, running
and auditing an ``auto`` action did. The fast path does only what these two routes need, with
the very same checks and answers:

* the key, its scopes and the rate limit: ``Context.caller_of``, before the body is read;
* the body: read up to the server's limit and decoded into the route's own ``ActionBody``;
* the answer: the handler's own function (``api.run`` / ``api.decide``), encoded as JSON, and
  ``ApiError`` answered in the API's one error shape.

Anything else is Litestar's, exactly as before: another method or path, a body over the
limit or one that does not decode (Litestar's validation says what is wrong, in its words),
and the OpenAPI document (the routes stay declared there). A request handed over after its
key was checked carries the key in its scope, so the route's check does not count it against
the rate limit twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

from aegis.server import api
from aegis.server.auth import ApiKey
from aegis.server.context import Context
from aegis.server.errors import ApiError
from aegis.server.routes import CHECKED_KEY

log = logging.getLogger("aegis.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_encode = msgspec.json.Encoder().encode
_one = msgspec.json.Decoder(api.ActionBody).decode
_one_or_many = msgspec.json.Decoder(api.ActionBody | list[api.ActionBody]).decode


async def _execute(ctx: Context, key: ApiKey, body: bytes) -> tuple[int, Any] | None:
    try:
        data = _one(body)
    except msgspec.DecodeError:  # ValidationError included
        return None
    return await api.run(ctx, key, data)


async def _evaluate(ctx: Context, key: ApiKey, body: bytes) -> tuple[int, Any] | None:
    try:
        data = _one_or_many(body)
    except msgspec.DecodeError:  # ValidationError included
        return None
    return 200, api.decide(ctx, key, data)


Route = Callable[[Context, ApiKey, bytes], Awaitable[tuple[int, Any] | None]]
ROUTES: dict[str, tuple[Route, tuple[str, ...]]] = {
    "/api/v1/execute": (_execute, ("execute",)),
    "/api/v1/evaluate": (_evaluate, ("evaluate",)),
}


class FastPaths:
    """Litestar's ASGI handler, with the two hot routes answered first (see the module)."""

    def __init__(self, inner: ASGIApp, ctx: Context) -> None:
        self.inner = inner
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = ROUTES.get(scope["path"]) if scope["type"] == "http" else None
        if found is None or scope["method"] != "POST":
            await self.inner(scope, receive, send)
            return
        route, scopes = found
        auth = b""
        length = -1
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value
            elif name == b"content-length":
                length = int(value) if value.isdigit() else -1
        try:
            key = await self.ctx.caller_of(auth.decode("latin-1"), *scopes)
        except ApiError as exc:
            await _answer(send, exc.status, {"error": exc.error, "detail": exc.detail}, exc.headers)
            return
        scope[CHECKED_KEY] = key
        limit = self.ctx.config.max_body_bytes
        if length > limit:  # Litestar answers 413, from the header alone
            await self.inner(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more and size <= limit:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        if more:  # over the limit: Litestar reads on and answers 413
            await self.inner(scope, _replay(body, True, receive), send)
            return
        try:
            answered = await route(self.ctx, key, body)
        except ApiError as exc:
            await _answer(send, exc.status, {"error": exc.error, "detail": exc.detail}, exc.headers)
            return
        except Exception as exc:
            log.exception("unhandled error on POST %s", scope["path"])
            await _answer(send, 500, {"error": "internal error", "detail": type(exc).__name__})
            return
        if answered is None:  # not a valid body: Litestar's validation explains why
            await self.inner(scope, _replay(body, False, receive), send)
            return
        status, payload = answered
        await _answer(send, status, payload, {"retry-after": "1"} if status == 202 else None)


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    """``receive`` for Litestar: the body read so far, then whatever the client sends next."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": more}

    return again


async def _answer(
    send: Send, status: int, payload: Any, headers: dict[str, str] | None = None
) -> None:
    try:
        body = _encode(payload)
    except (TypeError, ValueError, OverflowError) as exc:
        log.error("answer not encodable (%s): %s", type(exc).__name__, exc)
        status, body = 500, _encode({"error": "internal error", "detail": type(exc).__name__})
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    for name, value in (headers or {}).items():
        raw.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
