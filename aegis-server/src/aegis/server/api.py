"""The REST API under ``/api/v1``: evaluate, execute (or authorise and report), approvals, audit.

Every handler names the scopes it needs in its ``endpoint`` (checked before the request is
parsed); errors are ``{"error": ..., "detail": ...}`` (see ``errors``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Annotated, Any, Literal

import msgspec
from litestar import Response
from litestar.params import FromPath, JSONBody, PathParameter, QueryParameter

from aegis.core.action import Action
from aegis.core.result import Result
from aegis.errors import AegisError, ApprovalError, AuditError
from aegis.runtime.approval.flow import WAKERS
from aegis.runtime.approval.view import request_dict
from aegis.server.auth import ApiKey
from aegis.server.context import Context, context
from aegis.server.errors import ApiError, ErrorBody
from aegis.server.executions import DONE, WAITING
from aegis.server.jobs import Job
from aegis.server.openapi import Answered, Decision, Finished, Health, Pending, Ready, Reported
from aegis.server.outcomes import REPORTABLE
from aegis.server.routes import Req, endpoint, key_of, spec
from aegis.server.views import decision_dict, final_view

MAX_WAIT = 55.0
#: The largest id a JSON number carries exactly (and far more records than any database holds).
MAX_ID = 2**53 - 1
RUNNING = {
    202: spec(Pending, "waiting for approval (or still running): poll status_url"),
    500: spec(ErrorBody, "the execution's job failed (detail: the error's type and message)"),
}
FIRST_NEWS = 25.0
#: How often a status long-poll on another replica's execution re-reads its row.
STORED_POLL = 0.25


NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class ActionBody(msgspec.Struct, forbid_unknown_fields=True):
    action_type: NonEmpty
    target: NonEmpty
    params: dict[str, Any] = {}
    agent_id: str | None = None
    session_id: str | None = None
    description: str = ""


class Verdict(msgspec.Struct, forbid_unknown_fields=True):
    reason: str | None = None
    edits: dict[str, Any] | None = None
    #: The digest of the action the approver saw (optional; refused if it differs).
    digest: str | None = None


class Outcome(msgspec.Struct, forbid_unknown_fields=True):
    status: Literal["success", "failed", "skipped"]
    error: str | None = None
    reason: str | None = None
    duration_ms: float | None = None


def to_action(body: ActionBody, agent: str | None) -> Action:
    try:
        return Action(
            body.action_type,
            body.target,
            params=body.params,
            description=body.description,
            agent_id=agent if agent is not None else body.agent_id,
            session_id=body.session_id,
        )
    except (AegisError, TypeError, ValueError) as exc:
        raise ApiError(400, "invalid action", str(exc)) from exc


# -- evaluate --------------------------------------------------------------------------------


@endpoint(
    "POST",
    "/api/v1/evaluate",
    "evaluate",
    ok=Decision | list[Decision],
    errors=(400, 413),
    summary="Decide one action (or a list) without running it",
)
async def evaluate(request: Req, data: JSONBody[ActionBody | list[ActionBody]]) -> Any:
    return decide(context(request), key_of(request), data)


def decide(ctx: Context, key: ApiKey, data: ActionBody | list[ActionBody]) -> Any:
    """``/evaluate``'s answer (the Litestar route's and the fast path's)."""
    if isinstance(data, list):
        if len(data) > ctx.config.max_batch:
            raise ApiError(413, "batch too large", f"at most {ctx.config.max_batch} actions")
        return [decision_dict(ctx.runtime.evaluate(to_action(b, key.agent))) for b in data]
    return decision_dict(ctx.runtime.evaluate(to_action(data, key.agent)))


# -- execute / authorise ---------------------------------------------------------------------


def job_view(ctx: Context, job: Job) -> tuple[int, dict[str, Any]]:
    if job.done.is_set() and not job.handed_over:
        return final_view(job.id, job.outcome, job.failure, ctx.service.outcome_timeout)
    body: dict[str, Any] = {"execution_id": job.id, "status_url": f"/api/v1/executions/{job.id}"}
    if job.request_ids:
        body.update(pending_view(ctx, job.request_ids[-1]))
    else:
        body["status"] = "running"
    return 202, body


def pending_view(ctx: Context, rid: str) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "pending_approval", "request_id": rid}
    try:
        req = ctx.store.approvals.get(rid)
        body.update(
            expires_at=request_dict(req)["expires_at"],
            who_may_answer=req.requirements.describe(),
            approve_url=f"/api/v1/approvals/{rid}/approve",
        )
    except (AegisError, ApprovalError):
        pass
    return body


@endpoint(
    "POST",
    "/api/v1/execute",
    "execute",
    ok=Finished,
    errors=(400, 413),
    more=RUNNING,
    summary="Run an action through the pipeline (or authorise it)",
)
async def execute(request: Req, data: JSONBody[ActionBody]) -> Response[Any]:
    return answer_view(*await run(context(request), key_of(request), data))


async def run(ctx: Context, key: ApiKey, data: ActionBody) -> tuple[int, dict[str, Any]]:
    """``/execute``'s status and body (the Litestar route's and the fast path's)."""
    job = ctx.service.start_job(to_action(data, key.agent), key.name)
    await ctx.service.first_news(job, FIRST_NEWS)
    if job.done.is_set():  # answered in full: nothing to poll, nothing to keep in memory
        ctx.service.jobs.pop(job.id, None)
    else:
        await ctx.service.still_running(job)
    return job_view(ctx, job)


def answer_view(status: int, body: dict[str, Any]) -> Response[Any]:
    """A 202 says when to poll again (a replica handing its waits over answers one at once)."""
    return Response(
        body, status_code=status, headers={"Retry-After": "1"} if status == 202 else None
    )


@endpoint(
    "GET",
    "/api/v1/executions/{job_id:str}",
    "execute",
    ok=Finished,
    errors=(400, 404),
    more=RUNNING,
    summary="An execution's status; ?wait=S long-polls",
)
async def execution(
    request: Req,
    job_id: FromPath[str],
    wait: Annotated[float, QueryParameter(ge=0.0, le=MAX_WAIT)] = 0.0,
) -> Response[Any]:
    ctx = context(request)
    key = key_of(request)
    job = ctx.service.jobs.get(job_id)
    if job is None:  # another replica's (or a finished one's): read it from the database
        return await stored_execution(ctx, job_id, key, min(wait, MAX_WAIT))
    if job.key_name != key.name and not key.allows("admin"):
        raise ApiError(404, "no such execution", f"execution {job_id} is unknown")
    await ctx.service.until_done(job, min(wait, MAX_WAIT))
    return answer_view(*job_view(ctx, job))


async def stored_execution(ctx: Context, job_id: str, key: ApiKey, wait: float) -> Response[Any]:
    """An execution's row; ``wait`` polls it until it is done (any replica may finish it)."""
    executions = ctx.service.executions
    row = await asyncio.to_thread(executions.get, job_id)
    if row is None or (row["key_name"] != key.name and not key.allows("admin")):
        raise ApiError(404, "no such execution", f"execution {job_id} is unknown")
    deadline = time.monotonic() + wait
    news = ctx.service.execution_news.setdefault(job_id, asyncio.Event())
    try:
        while row is not None and row["state"] != DONE and time.monotonic() < deadline:
            if ctx.service.draining.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(news.wait(), STORED_POLL)
            news.clear()
            row = await asyncio.to_thread(executions.get, job_id)
    finally:
        ctx.service.execution_news.pop(job_id, None)
    if row is None:
        raise ApiError(404, "no such execution", f"execution {job_id} is unknown")
    if row["state"] == DONE:
        return Response(json.loads(row["body"]), status_code=int(row["status"]))
    body: dict[str, Any] = {"execution_id": job_id, "status_url": f"/api/v1/executions/{job_id}"}
    if row["state"] == WAITING and row["request_id"]:
        body.update(await asyncio.to_thread(pending_view, ctx, row["request_id"]))
    else:
        body["status"] = "running"
    return answer_view(202, body)


@endpoint(
    "POST",
    "/api/v1/audit/{audit_id:int}/outcome",
    "execute",
    ok=Reported,
    errors=(400, 404, 409, 413),
    summary="Report what you did",
)
async def report_outcome(
    request: Req,
    audit_id: Annotated[int, PathParameter(ge=1, le=MAX_ID)],
    data: JSONBody[Outcome],
) -> dict[str, Any]:
    ctx = context(request)
    key = key_of(request)
    if data.status not in REPORTABLE:
        raise ApiError(400, "invalid outcome", f"status must be one of {', '.join(REPORTABLE)}")
    owner = await asyncio.to_thread(ctx.service.outcomes.owner, audit_id)
    if owner is None:
        raise ApiError(409, "no outcome expected", f"record {audit_id} awaits no report")
    if owner != key.name and not key.allows("admin"):
        raise ApiError(403, "not yours", f"record {audit_id} was authorised for another key")
    record = await asyncio.to_thread(ctx.store.get, audit_id)
    if record is None:
        raise ApiError(404, "no such record", f"audit record {audit_id}")
    result = Result(
        Action(record.action_type, record.target),
        data.status,
        error=data.error,
        reason=data.reason or f"reported by key:{key.name}",
        duration_ms=data.duration_ms,
        attempts=1 if data.status != "skipped" else 0,
    )
    try:
        reported = await ctx.service.report(audit_id, result)
    except AuditError as exc:  # still owed: nothing was recorded, the caller sends it again
        detail = "the audit store could not record it now; report it again"
        raise ApiError(503, "outcome not recorded", detail, {"Retry-After": "1"}) from exc
    if not reported:
        raise ApiError(409, "no outcome expected", f"record {audit_id} was already closed")
    return {"audit_id": audit_id, "status": data.status}


# -- approvals -------------------------------------------------------------------------------


@endpoint(
    "GET",
    "/api/v1/approvals",
    "approve",
    "audit:read",
    ok=list[dict[str, Any]],
    errors=(400,),
    summary="Approval requests (pending by default)",
)
async def list_approvals(
    request: Req,
    state_filter: Annotated[str | None, QueryParameter(name="state")] = "pending",
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    ctx = context(request)
    wanted = None if state_filter in (None, "", "all") else state_filter
    found = await asyncio.to_thread(ctx.store.approvals.list, state=wanted, limit=limit)
    return [request_dict(r) for r in found]


def _get_request(ctx: Context, rid: str) -> Any:
    try:
        return ctx.store.approvals.get(rid)
    except (AegisError, KeyError, LookupError) as exc:
        raise ApiError(404, "no such approval request", str(exc).splitlines()[0]) from exc


@endpoint(
    "GET",
    "/api/v1/approvals/{request_id:str}",
    "approve",
    "audit:read",
    ok=dict[str, Any],
    errors=(404,),
    summary="One approval request with its answers",
)
async def show_approval(request: Req, request_id: FromPath[str]) -> dict[str, Any]:
    ctx = context(request)
    found = await asyncio.to_thread(_get_request, ctx, request_id)
    return request_dict(found)


async def answer(
    ctx: Context, rid: str, channel: str, who: str, verdict: str, body: Verdict
) -> dict[str, Any]:
    """Report one answer through the core's single check; wake a waiter in this process."""
    await asyncio.to_thread(_get_request, ctx, rid)
    outcome = await asyncio.to_thread(
        ctx.store.approvals.respond,
        rid,
        channel=channel,
        responder=who,
        verdict=verdict,
        reason=body.reason,
        edits=body.edits if verdict == "approve" else None,
        digest=body.digest,
    )
    WAKERS.wake(outcome)
    if outcome.accepted:  # a waiter on another replica need not wait for its next poll
        await ctx.service.tell(f"approval:{rid}")
    if not outcome.accepted:
        raise ApiError(409, "answer refused", outcome.message)
    return {"accepted": True, "state": outcome.state, "message": outcome.message}


@endpoint(
    "POST",
    "/api/v1/approvals/{request_id:str}/approve",
    "approve",
    ok=Answered,
    errors=(400, 404, 409, 413),
    summary="Approve (maybe edit)",
)
async def approve(
    request: Req, request_id: FromPath[str], data: JSONBody[Verdict | None] = None
) -> dict[str, Any]:
    ctx = context(request)
    key = key_of(request)
    return await answer(ctx, request_id, "key", key.name, "approve", data or Verdict())


@endpoint(
    "POST",
    "/api/v1/approvals/{request_id:str}/deny",
    "approve",
    ok=Answered,
    errors=(400, 404, 409, 413),
    summary="Deny",
)
async def deny(
    request: Req, request_id: FromPath[str], data: JSONBody[Verdict | None] = None
) -> dict[str, Any]:
    ctx = context(request)
    key = key_of(request)
    return await answer(ctx, request_id, "key", key.name, "deny", data or Verdict())


# -- health ----------------------------------------------------------------------------------


@endpoint("GET", "/health", ok=Health, summary="The process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@endpoint(
    "GET",
    "/ready",
    ok=Ready,
    more={503: spec(ErrorBody, "database unreachable")},
    summary="The database is reachable and the chain head readable",
)
async def ready(request: Req) -> Response[Any]:
    ctx = context(request)
    started = time.monotonic()
    try:
        await asyncio.to_thread(ctx.store.query, limit=1, order="desc")
    except Exception as exc:
        return Response({"error": "not ready", "detail": str(exc).splitlines()[0]}, status_code=503)
    return Response({"status": "ready", "db_ms": round((time.monotonic() - started) * 1000, 1)})


HANDLERS = [
    evaluate,
    execute,
    execution,
    report_outcome,
    list_approvals,
    show_approval,
    approve,
    deny,
    health,
    ready,
]
