"""The read side of the API: audit records (filtered, paged, streamed), verification, stats
Every handler needs the ``audit:read`` scope."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar.params import FromQuery, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from aegis.errors import AegisError
from aegis.server.api import MAX_ID
from aegis.server.context import context
from aegis.server.errors import ApiError
from aegis.server.openapi import AuditPage, Verified
from aegis.server.routes import Req, endpoint
from aegis.server.views import jsonable

Cursor = Annotated[int | None, QueryParameter(ge=0, le=MAX_ID, schema_extra={"minimum": 0})]


@endpoint(
    "GET",
    "/api/v1/audit",
    "audit:read",
    ok=AuditPage,
    errors=(400,),
    summary="Audit records; filters as in 'aegis audit'; cursor pagination",
)
async def audit(
    request: Req,
    session: FromQuery[str | None] = None,
    action_type: FromQuery[str | None] = None,
    risk_level: FromQuery[str | None] = None,
    result: FromQuery[str | None] = None,
    agent: FromQuery[str | None] = None,
    decision: FromQuery[str | None] = None,
    matched_rule: FromQuery[str | None] = None,
    since: FromQuery[str | None] = None,
    until: FromQuery[str | None] = None,
    cursor: Cursor = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    ctx = context(request)

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


@endpoint(
    "GET",
    "/api/v1/audit/stream",
    "audit:read",
    errors=(400,),
    media_type="text/event-stream",
    summary="Server-sent events: every finished record from ?cursor on",
)
async def audit_stream(
    request: Req,
    cursor: Cursor = None,
    limit: Annotated[int | None, QueryParameter(ge=1, le=1_000_000)] = None,
) -> ServerSentEvent:
    """A live tail. Records still pending (running, awaiting a report) are held back until
    they finish, so each is sent once, final; ``limit`` ends the stream after that many."""
    ctx = context(request)

    async def events() -> AsyncIterator[ServerSentEventMessage]:
        after = cursor if cursor is not None else 0
        if cursor is None:
            newest = await asyncio.to_thread(ctx.store.query, limit=1, order="desc")
            after = newest[0].id if newest else 0
        sent = 0
        while (limit is None or sent < limit) and not ctx.service.draining.is_set():
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


@endpoint("GET", "/api/v1/audit/verify", "audit:read", ok=Verified, summary="Check the chain")
async def audit_verify(request: Req) -> dict[str, Any]:
    ctx = context(request)
    report = await asyncio.to_thread(ctx.store.verify)
    return {"ok": report.ok, "report": jsonable(report)}


@endpoint("GET", "/api/v1/stats", "audit:read", ok=list[dict[str, Any]], summary="Per-rule counts")
async def stats(request: Req) -> list[dict[str, Any]]:
    ctx = context(request)
    return [s.to_dict() for s in await asyncio.to_thread(ctx.store.stats)]


HANDLERS = [audit, audit_stream, audit_verify, stats]
