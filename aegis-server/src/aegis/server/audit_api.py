"""The read side of the API: audit records (filtered, paged, streamed), verification, stats
Every handler needs the ``audit:read`` scope."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import Request, get
from litestar.params import FromQuery, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from aegis.errors import AegisError
from aegis.server.api import MAX_ID
from aegis.server.context import context
from aegis.server.errors import ApiError, error_responses
from aegis.server.views import jsonable


@get(
    "/api/v1/audit",
    responses=error_responses(400, 401, 403, 413, 429),
    summary="Audit records; filters as in 'aegis audit'; cursor pagination",
)
async def audit(
    request: Request[Any, Any, Any],
    session: FromQuery[str | None] = None,
    action_type: FromQuery[str | None] = None,
    risk_level: FromQuery[str | None] = None,
    result: FromQuery[str | None] = None,
    agent: FromQuery[str | None] = None,
    decision: FromQuery[str | None] = None,
    matched_rule: FromQuery[str | None] = None,
    since: FromQuery[str | None] = None,
    until: FromQuery[str | None] = None,
    cursor: Annotated[int | None, QueryParameter(ge=0, le=MAX_ID)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    ctx = context(request)
    await ctx.caller(request, "audit:read")

    def run() -> list[Any]:
        return ctx.store.query(
            session=session,
            action_type=action_type,
            risk_level=risk_level.upper() if risk_level else None,
            result=result,
            agent=agent,
            decision=decision,
            matched_rule=matched_rule,
            since=since or None,
            until=until or None,
            after_id=cursor,
            limit=limit + 1,
        )

    try:
        found = await asyncio.to_thread(run)
    except (ValueError, AegisError) as exc:
        raise ApiError(400, "invalid filter", str(exc).splitlines()[0]) from exc
    more = len(found) > limit
    page = found[:limit]
    return {
        "records": [r.to_dict() for r in page],
        "next_cursor": page[-1].id if more and page else None,
    }


@get(
    "/api/v1/audit/stream",
    media_type="text/event-stream",
    responses=error_responses(400, 401, 403, 413, 429),
    summary="Server-sent events: every finished record from ?cursor on",
)
async def audit_stream(
    request: Request[Any, Any, Any],
    cursor: Annotated[int | None, QueryParameter(ge=0, le=MAX_ID)] = None,
    limit: Annotated[int | None, QueryParameter(ge=1, le=1_000_000)] = None,
) -> ServerSentEvent:
    """A live tail. Records still pending (running, awaiting a report) are held back until
    they finish, so each is sent once, final; ``limit`` ends the stream after that many."""
    ctx = context(request)
    await ctx.caller(request, "audit:read")

    async def events() -> AsyncIterator[ServerSentEventMessage]:
        after = cursor if cursor is not None else 0
        if cursor is None:
            newest = await asyncio.to_thread(ctx.store.query, limit=1, order="desc")
            after = newest[0].id if newest else 0
        sent = 0
        while limit is None or sent < limit:
            batch = await asyncio.to_thread(ctx.store.query, after_id=after, limit=200)
            for rec in batch:
                if rec.result == "pending":
                    break
                after = rec.id
                sent += 1
                yield ServerSentEventMessage(data=json.dumps(rec.to_dict()), id=rec.id)
                if limit is not None and sent >= limit:
                    return
            await asyncio.sleep(0.5)

    return ServerSentEvent(events())


@get(
    "/api/v1/audit/verify",
    responses=error_responses(400, 401, 403, 413, 429),
    summary="Check the hash chain",
)
async def audit_verify(request: Request[Any, Any, Any]) -> dict[str, Any]:
    ctx = context(request)
    await ctx.caller(request, "audit:read")
    report = await asyncio.to_thread(ctx.store.verify)
    return {"ok": report.ok, "report": jsonable(report)}


@get("/api/v1/stats", responses=error_responses(400, 401, 403, 413, 429), summary="Per-rule counts")
async def stats(request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
    ctx = context(request)
    await ctx.caller(request, "audit:read")
    return [s.to_dict() for s in await asyncio.to_thread(ctx.store.stats)]


HANDLERS = [audit, audit_stream, audit_verify, stats]
