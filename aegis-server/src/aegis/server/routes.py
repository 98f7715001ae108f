"""The two kinds of route, declared once: ``endpoint`` for the API, ``page`` for the dashboard.

An endpoint names its scopes; its ``before_request`` checks the key (and the rate limit)
before Litestar parses anything, so a caller without a key learns nothing from a 400. The
statuses it can answer are documented from one table (``errors.error_responses``): every keyed
endpoint can answer 401/403/429/503, and the decorator adds them. A page is signed in or
redirected to the login form. Handlers read the caller with ``key_of`` / ``user_of``.

``before_request``, not a guard, and no dependency injection: both cost a copy or a
resolution per request, and measured 15 % and 40 % of ``/evaluate``'s throughput.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from litestar import Request, Response, route
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.response import Redirect

from aegis.server.auth import ApiKey
from aegis.server.context import Session, context, session_of
from aegis.server.errors import error_responses

#: Where the fast path leaves a key it checked (``aegis.server.fastpath``).
CHECKED_KEY = "aegis_checked_key"

AUTH = (401, 403, 429, 503)
Req = Request[Any, Any, Any]
Decorator = Callable[[Callable[..., Any]], HTTPRouteHandler]
Check = Callable[[Req], Awaitable[None]]


class SignIn(Exception):
    """No valid dashboard session: the answer is the login form."""


def _needs(scopes: tuple[str, ...]) -> Check:
    async def check(request: Req) -> None:
        # A request the fast path handed over was checked (and counted) there already.
        checked = request.scope.get(CHECKED_KEY)
        if checked is None:
            checked = await context(request).caller(request, *scopes)
        request.state.aegis_key = checked

    return check


async def _signed_in(request: Req) -> None:
    found = session_of(context(request), request)
    if found is None:
        raise SignIn
    request.state.aegis_session = found


def key_of(request: Req) -> ApiKey:
    """The caller's key, as the endpoint's check found it."""
    key: ApiKey = request.state.aegis_key
    return key


def user_of(request: Req) -> Session:
    """The signed-in dashboard user, as the page's check found them."""
    found: Session = request.state.aegis_session
    return found


def spec(data: Any, description: str) -> ResponseSpec:
    return ResponseSpec(data_container=data, description=description, generate_examples=False)


def endpoint(
    method: str,
    path: str,
    *scopes: str,
    summary: str,
    ok: Any = None,
    errors: Iterable[int] = (),
    more: dict[int, ResponseSpec] | None = None,
    status_code: int = 200,
    **options: Any,
) -> Decorator:
    """An API route: ``scopes`` (any one will do) checked first; ``ok`` documents the success
    body, ``errors`` the statuses beyond the keyed four, ``more`` anything else (a 202)."""
    responses = error_responses(*sorted({*errors, *(AUTH if scopes else ())}))
    if ok is not None:
        responses[status_code] = spec(ok, "OK")
    responses.update(more or {})
    return route(
        path,
        http_method=HttpMethod(method),
        status_code=status_code,
        summary=summary,
        responses=responses,
        before_request=_needs(scopes) if scopes else None,
        **options,
    )


def page(method: str, path: str, *, signed_in: bool = True, **options: Any) -> Decorator:
    """A dashboard route: not in the API document; signed in unless ``signed_in=False``."""
    return route(
        path,
        http_method=HttpMethod(method),
        include_in_schema=False,
        status_code=options.pop("status_code", 200),
        before_request=_signed_in if signed_in else None,
        **options,
    )


def sign_in(_: Request[Any, Any, Any], __: SignIn) -> Response[Any]:
    return Redirect("/dashboard/login", status_code=303)


def allow_all_methods(handlers: list[HTTPRouteHandler]) -> list[HTTPRouteHandler]:
    """``handlers`` and, for each path served by several, an ``OPTIONS`` answer naming all
    of its methods (Litestar 2's own names only the first one registered: its issue #4169)."""
    methods: dict[str, set[str]] = {}
    for handler in handlers:
        for path in handler.paths:
            methods.setdefault(path, set()).update(handler.http_methods)
    extra = [_options(path, found) for path, found in methods.items() if len(found) > 1]
    return [*extra, *handlers]


def _options(path: str, methods: set[str]) -> HTTPRouteHandler:
    allow = ", ".join(sorted({*methods, "OPTIONS"}))

    async def options() -> Response[None]:
        return Response(None, status_code=204, headers={"Allow": allow})

    return route(path, http_method=HttpMethod.OPTIONS, include_in_schema=False)(options)
