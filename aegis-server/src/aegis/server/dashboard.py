"""The dashboard: server-rendered pages (no CDN) where people answer approvals.

One script of its own (``static/live.js``, served from the installed package) keeps the
pending list live over server-sent events (``/dashboard/events``); every page works without
it. Policy pages (versions, diff, playground) are in ``dashboard_policy``.

Sign-in is with an API key that has the ``approve`` scope; the key is checked once and never
stored in the cookie. The session cookie is signed, HttpOnly, SameSite=Strict (Secure behind
HTTPS); every form carries a CSRF token derived from the session. Answers go through the same
core check as every channel, as identity ``web:<key name>``.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any
from urllib.parse import quote

from litestar import Response
from litestar.datastructures import Cookie
from litestar.params import FromPath, FromQuery, URLEncodedBody
from litestar.response import Redirect, ServerSentEvent, ServerSentEventMessage

from aegis.runtime.approval.view import request_dict
from aegis.server.api import Verdict, answer
from aegis.server.auth import SESSION_SECONDS
from aegis.server.context import SESSION_COOKIE, Context, context
from aegis.server.errors import ApiError
from aegis.server.routes import Req, page, user_of

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}
nav a{margin-right:1rem} table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.4rem;text-align:left;vertical-align:top}
.req{border:1px solid #ccc;border-radius:6px;padding:1rem;margin:1rem 0}
.msg{background:#eef;padding:.5rem} .err{background:#fee;padding:.5rem}
pre{background:#f6f6f6;padding:.5rem;white-space:pre-wrap}
.add{color:#064} .del{color:#900} textarea{font-family:monospace;width:100%}
"""
LIVE_SCRIPT = "<script src='/dashboard/static/live.js'></script>"
EVENTS_EVERY = 1.0
EVENTS_FOR = 3600.0  # then the browser reconnects (EventSource does so by itself)


def _page(
    title: str, body: str, *, signed_in: str | None = None, script: bool = False
) -> Response[str]:
    nav = (
        '<nav><a href="/dashboard">Pending approvals</a><a href="/dashboard/audit">Audit</a>'
        '<a href="/dashboard/policy">Policy</a><a href="/dashboard/playground">Playground</a>'
        f"<span>signed in as web:{html.escape(signed_in)}</span></nav>"
        if signed_in
        else ""
    )
    doc = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)} - Aegis"
        f"</title><style>{_STYLE}</style></head><body>{nav}<h1>{html.escape(title)}</h1>"
        f"{body}{LIVE_SCRIPT if script else ''}</body></html>"
    )
    return Response(
        doc,
        media_type="text/html",
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
        },
    )


def _login_form(error: str = "") -> Response[str]:
    err = f"<p class='err'>{html.escape(error)}</p>" if error else ""
    return _page(
        "Sign in",
        f"{err}<form method='post' action='/dashboard/login'>"
        "<label>API key (with the approve scope) <input type='password' name='key' "
        "autocomplete='off' required></label> <button type='submit'>Sign in</button></form>",
    )


@page("GET", "/dashboard/login", signed_in=False)
async def login_page() -> Response[str]:
    return _login_form()


@page("POST", "/dashboard/login", signed_in=False, status_code=303)
async def login(request: Req, data: URLEncodedBody[dict[str, str]]) -> Response[Any]:
    ctx = context(request)
    if ctx.keys.open:
        return _login_form("this server has no API keys: the dashboard needs one (--api-key)")
    key = ctx.keys.lookup(data.get("key", "").strip())
    if key is None or not key.allows("approve"):
        return _login_form("unknown key, or it lacks the approve scope")
    cookie = Cookie(
        key=SESSION_COOKIE,
        value=ctx.sessions.issue(key.name),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=ctx.config.secure_cookies,
        path="/dashboard",
    )
    return Redirect("/dashboard", cookies=[cookie], status_code=303)


def _csrf_field(ctx: Context, cookie: str) -> str:
    return f"<input type='hidden' name='csrf' value='{ctx.sessions.csrf(cookie)}'>"


def check_csrf(ctx: Context, cookie: str, form: dict[str, str]) -> None:
    if not ctx.sessions.csrf_ok(cookie, form.get("csrf")):
        raise ApiError(403, "forbidden", "missing or wrong CSRF token")


def _request_card(ctx: Context, req: Any, cookie: str) -> str:
    d = request_dict(req)
    rid = html.escape(req.id)
    params = html.escape(json.dumps(d["params"], indent=2, ensure_ascii=False))
    csrf = _csrf_field(ctx, cookie)
    return (
        f"<div class='req' data-request='{rid}'>"
        f"<h2>{html.escape(req.action_type)} &rarr; {html.escape(req.target)}</h2>"
        f"<table><tr><th>request</th><td>{rid}</td></tr>"
        f"<tr><th>agent / session</th><td>{html.escape(str(req.agent_id))} / "
        f"{html.escape(str(req.session_id))}</td></tr>"
        f"<tr><th>rule</th><td>{html.escape(str(req.matched_rule))} "
        f"(risk {html.escape(req.risk_level)})</td></tr>"
        f"<tr><th>who may answer</th><td>{html.escape(d['who_may_answer'])}</td></tr>"
        f"<tr><th>expires</th><td>{html.escape(d['expires_at'])} "
        f"(in {d['expires_in_s']} s)</td></tr>"
        f"<tr><th>description</th><td>{html.escape(req.description)}</td></tr></table>"
        f"<pre>{params}</pre>"
        f"<form method='post' action='/dashboard/approvals/{rid}/answer'>{csrf}"
        "<label>Reason <input name='reason'></label><br>"
        "<label>Edits (JSON object of params to change, optional)<br>"
        "<textarea name='edits' rows='2' cols='60'></textarea></label><br>"
        "<button type='submit' name='verdict' value='approve'>Approve</button> "
        "<button type='submit' name='verdict' value='deny'>Deny</button></form></div>"
    )


@page("GET", "/dashboard")
async def pending(request: Req, msg: FromQuery[str | None] = None) -> Response[Any]:
    ctx = context(request)
    user = user_of(request)
    key, cookie = user
    found = await asyncio.to_thread(ctx.store.approvals.list, state="pending", limit=200)
    note = f"<p class='msg'>{html.escape(msg)}</p>" if msg else ""
    cards = "".join(_request_card(ctx, r, cookie) for r in found)
    body = (
        f"{note}<p>Updates: <span id='live'>reload to refresh</span></p>"
        f"<p id='nothing'{' hidden' if found else ''}>Nothing is waiting.</p>"
        f"<div id='pending'>{cards}</div>"
    )
    return _page("Pending approvals", body, signed_in=key.name, script=True)


@page("GET", "/dashboard/static/live.js", signed_in=False)
async def live_js() -> Response[bytes]:
    data = resources.files("aegis.server").joinpath("static/live.js").read_bytes()
    return Response(
        data,
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


@page("GET", "/dashboard/events", media_type="text/event-stream")
async def events(request: Req) -> Any:
    """The pending list whenever it changes: ids and each card's HTML (with this session's
    CSRF token), as event ``pending``."""
    ctx = context(request)
    user = user_of(request)
    _, cookie = user

    async def stream() -> AsyncIterator[ServerSentEventMessage]:
        shown: list[str] | None = None
        until = time.monotonic() + EVENTS_FOR
        while time.monotonic() < until and not ctx.service.draining.is_set():
            found = await asyncio.to_thread(ctx.store.approvals.list, state="pending", limit=200)
            ids = [r.id for r in found]
            if ids != shown:
                shown = ids
                cards = {r.id: _request_card(ctx, r, cookie) for r in found}
                yield ServerSentEventMessage(
                    data=json.dumps({"ids": ids, "cards": cards}), event="pending"
                )
            await asyncio.sleep(EVENTS_EVERY)

    return ServerSentEvent(stream())


@page("POST", "/dashboard/approvals/{request_id:str}/answer", status_code=303)
async def answer_form(
    request: Req, request_id: FromPath[str], data: URLEncodedBody[dict[str, str]]
) -> Response[Any]:
    ctx = context(request)
    user = user_of(request)
    key, cookie = user
    check_csrf(ctx, cookie, data)
    verdict = data.get("verdict")
    if verdict not in ("approve", "deny"):
        raise ApiError(400, "invalid request", "verdict must be approve or deny")
    edits: dict[str, Any] | None = None
    if (data.get("edits") or "").strip():
        try:
            edits = json.loads(data["edits"])
        except ValueError as exc:
            return Redirect(f"/dashboard?msg=edits are not JSON: {exc}", status_code=303)
        if not isinstance(edits, dict):
            return Redirect("/dashboard?msg=edits must be a JSON object", status_code=303)
    body = Verdict(reason=data.get("reason") or None, edits=edits)
    try:
        out = await answer(ctx, request_id, "web", key.name, verdict, body)
        msg = f"{verdict}: {out['message'] or out['state']}"
    except ApiError as exc:
        msg = f"{exc.error}: {exc.detail}"
    return Redirect(f"/dashboard?msg={quote(msg)}", status_code=303)


@page("GET", "/dashboard/audit")
async def audit_page(request: Req, action_type: FromQuery[str | None] = None) -> Response[Any]:
    ctx = context(request)
    user = user_of(request)
    key, _ = user
    records = await asyncio.to_thread(
        ctx.store.query, action_type=action_type or None, limit=200, order="desc"
    )
    report = await asyncio.to_thread(ctx.store.verify)
    chain = "verified" if report.ok else "BROKEN"
    rows = "".join(
        f"<tr><td>{r.id}</td><td>{html.escape(r.created_at.isoformat(timespec='seconds'))}</td>"
        f"<td>{html.escape(r.action_type)}</td><td>{html.escape(r.target)}</td>"
        f"<td>{html.escape(str(r.matched_rule))}</td><td>{html.escape(r.decision)}</td>"
        f"<td>{html.escape(r.result)}</td><td>{html.escape(str(r.approver or ''))}</td></tr>"
        for r in records
    )
    value = html.escape(action_type or "")
    form = (
        "<form method='get' action='/dashboard/audit'><label>action type (glob) "
        f"<input name='action_type' value='{value}'></label> <button>Filter</button></form>"
    )
    table = (
        f"<p>Chain: <strong id='chain'>{chain}</strong></p>{form}<table><tr><th>id</th>"
        "<th>at</th><th>type</th><th>target</th><th>rule</th><th>decision</th><th>result</th>"
        f"<th>approver</th></tr>{rows}</table>"
    )
    return _page("Audit log", table, signed_in=key.name)


HANDLERS = [login_page, login, pending, live_js, events, answer_form, audit_page]
