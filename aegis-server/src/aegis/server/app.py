"""The Litestar app: the API, the dashboard and every route a plugin registered."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

from litestar import Litestar, Request, Response, route
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from aegis import plugins
from aegis.http import HttpRequest, HttpResponse, RouteContext, RouteHandler
from aegis.runtime.audit import AuditStore
from aegis.runtime.engine import Runtime
from aegis.runtime.policy_versions import VersionedPolicy
from aegis.server import api, audit_api, dashboard, dashboard_policy, policy_api
from aegis.server.auth import ApiKey, KeyRing, Sessions
from aegis.server.context import Context, ServerConfig
from aegis.server.errors import (
    ApiError,
    handle_api_error,
    handle_http,
    handle_unexpected,
    handle_validation,
)
from aegis.server.fastpath import FastPaths
from aegis.server.openapi import tighten
from aegis.server.ratelimit import SharedRateLimiter
from aegis.server.routes import SignIn, allow_all_methods, sign_in
from aegis.server.service import Service

log = logging.getLogger("aegis.server")
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def plugin_route(
    path: str, handler: RouteHandler, methods: Sequence[str], context: RouteContext
) -> HTTPRouteHandler:
    """A Litestar handler around a framework-neutral plugin handler (raw body preserved)."""

    async def call(request: Request[Any, Any, Any]) -> Response[bytes]:
        raw = await request.body()
        neutral = HttpRequest(
            method=request.method,
            path=request.url.path,
            headers=dict(request.headers),
            query={k: v for k, v in request.query_params.items()},
            body=raw,
            params={k: str(v) for k, v in request.path_params.items()},
            context=context,
        )
        out = await handler(neutral)
        if not isinstance(out, HttpResponse):
            raise ApiError(500, "plugin route failed", f"{path} returned no HttpResponse")
        return Response(
            out.body, status_code=out.status, media_type=out.content_type, headers=dict(out.headers)
        )

    litestar_path = _PARAM.sub(r"{\1:str}", path)
    return route(
        litestar_path,
        http_method=cast(Any, [m.upper() for m in methods]),
        include_in_schema=False,
        name=f"plugin:{path}",
    )(call)


def registered_routes(context: RouteContext) -> list[HTTPRouteHandler]:
    found: list[HTTPRouteHandler] = []
    for name, reg in sorted(plugins.get_registry().of_kind("routes").items()):
        methods = reg.options.get("methods") or ["POST"]
        try:
            found.append(plugin_route(name, reg.obj, methods, context))
        except Exception as exc:  # a bad registration must not take the server down
            log.error("route %s from plugin %s not mounted: %s", name, reg.plugin, exc)
    return found


def create_app(
    runtime: Runtime,
    *,
    keys: Sequence[ApiKey] = (),
    config: ServerConfig | None = None,
    authorize_only: bool = False,
    session_secret: str | None = None,
) -> Litestar:
    """The ASGI app. ``authorize_only``: no executor, so ``/execute`` authorises and the
    caller reports the outcome."""
    cfg = config or ServerConfig()
    store: AuditStore = runtime.audit
    service = Service(
        runtime,
        store,
        authorize_only=authorize_only,
        outcome_timeout=cfg.outcome_timeout,
        listen=cfg.notify,
    )
    ctx = Context(
        runtime,
        store,
        service,
        KeyRing(keys),
        Sessions(session_secret),
        SharedRateLimiter(service.outcomes.engine, cfg.rate_per_key),
        cfg,
    )

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await service.start()
        source = runtime.policy
        follow = (
            asyncio.create_task(source.follow(cfg.policy_poll))
            if isinstance(source, VersionedPolicy)
            else None
        )
        try:
            yield
        finally:
            if follow is not None:
                follow.cancel()
            await service.stop()

    app = Litestar(
        route_handlers=allow_all_methods(
            [
                *api.HANDLERS,
                *audit_api.HANDLERS,
                *policy_api.HANDLERS,
                *dashboard.HANDLERS,
                *dashboard_policy.HANDLERS,
                *registered_routes(RouteContext(store)),
            ]
        ),
        lifespan=[lifespan],
        request_max_body_size=cfg.max_body_bytes,
        exception_handlers={
            ApiError: handle_api_error,
            SignIn: sign_in,
            ValidationException: handle_validation,
            HTTPException: handle_http,
            Exception: handle_unexpected,
        },
        openapi_config=OpenAPIConfig(
            title="Aegis",
            version="0.1.0",
            path="/schema",
            render_plugins=[JsonRenderPlugin(path=["/", "/openapi.json"])],
        ),
        debug=False,
    )
    app.state.aegis = ctx
    app.asgi_handler = cast(Any, FastPaths(cast(Any, app.asgi_handler), ctx))
    tighten(app)
    return app
