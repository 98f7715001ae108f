"""Dashboard pages about the policy: the version in force with its history and a diff between
versions, and a playground that decides actions against pasted YAML without storing it.

Read-only on purpose: changing the policy is an ``admin`` act done over the API (``PUT
/api/v1/policy``) or with ``aegis policy rollback``, never by a dashboard session.
"""

from __future__ import annotations

import asyncio
import html
import json
from typing import Any

from litestar import Response
from litestar.params import FromQuery, URLEncodedBody

from aegis.core.action import Action
from aegis.core.policy import Policy
from aegis.core.policy_diff import sampled_diff, text_diff, to_json
from aegis.errors import AegisError, PolicyError
from aegis.runtime.policy_versions import PolicyVersion, VersionedPolicy
from aegis.server.context import context
from aegis.server.dashboard import _csrf_field, _page, check_csrf
from aegis.server.routes import Req, page, user_of
from aegis.server.views import decision_dict

MAX_PLAY_ACTIONS = 50
EXAMPLE_ACTIONS = 'read:crm\nbulk_update:crm {"count": 500}\ndelete:db'


def _version_row(v: PolicyVersion, in_force: int) -> str:
    d = v.to_dict()
    mark = " <strong>(in force)</strong>" if v.version == in_force else ""
    how = d["source"] if v.rolled_back_to is None else f"rollback to {v.rolled_back_to}"
    diff = (
        f"<a href='/dashboard/policy?old={v.version - 1}&new={v.version}'>diff</a>"
        if v.version > 1
        else ""
    )
    return (
        f"<tr data-version='{v.version}'><td>{v.version}{mark}</td>"
        f"<td>{html.escape(d['created_at'])}</td><td>{html.escape(v.author)}</td>"
        f"<td>{html.escape(how)}</td><td>{html.escape(v.note or '')}</td>"
        f"<td><code>{html.escape(v.fingerprint[:12])}</code></td><td>{diff}</td></tr>"
    )


def _diff_html(before: PolicyVersion, after: PolicyVersion) -> str:
    text = text_diff(
        before.yaml, after.yaml, old_name=f"v{before.version}", new_name=f"v{after.version}"
    )
    lines = []
    for line in text.splitlines():
        cls = (
            "add"
            if line.startswith("+") and not line.startswith("+++")
            else "del"
            if line.startswith("-") and not line.startswith("---")
            else ""
        )
        lines.append(
            f"<span class='{cls}'>{html.escape(line)}</span>" if cls else html.escape(line)
        )
    changed = to_json(sampled_diff(before.load(), after.load()), 3)
    rows = "".join(
        f"<tr><td>{html.escape(c['old'])} &rarr; {html.escape(c['new'])}</td><td>{c['count']}</td>"
        f"<td>{html.escape(', '.join(e['action_type'] + ':' + e['target'] for e in c['examples']))}"
        "</td></tr>"
        for c in changed["changes"]
    )
    return (
        f"<h2>Diff v{before.version} &rarr; v{after.version}</h2>"
        f"<pre id='diff'>{chr(10).join(lines) or 'same text'}</pre>"
        f"<p id='changed'>{changed['changed']} of {changed['total']} sampled actions change "
        "decision</p><table><tr><th>change</th><th>count</th><th>examples</th></tr>"
        f"{rows}</table>"
    )


@page("GET", "/dashboard/policy")
async def policy_page(
    request: Req,
    old: FromQuery[int | None] = None,
    new: FromQuery[int | None] = None,
) -> Response[Any]:
    ctx = context(request)
    user = user_of(request)
    key, _ = user
    source = ctx.runtime.policy
    if not isinstance(source, VersionedPolicy):
        return _page("Policy", "<p>This server keeps no policy versions.</p>", signed_in=key.name)
    history = source.history
    found = await asyncio.to_thread(history.list, limit=200)
    rows = "".join(_version_row(v, source.version) for v in found)
    body = (
        f"<p>In force: <strong id='in-force'>version {source.version}</strong> by "
        f"{html.escape(source.current.author)}. Change it with <code>PUT /api/v1/policy</code> "
        "(admin) or <code>aegis policy rollback N</code>.</p>"
    )
    if old is not None and new is not None:
        before = await asyncio.to_thread(history.get, old)
        after = await asyncio.to_thread(history.get, new)
        if before is None or after is None:
            body += "<p class='err'>no such version</p>"
        else:
            try:
                body += await asyncio.to_thread(_diff_html, before, after)
            except PolicyError as exc:
                body += f"<p class='err'>{html.escape(str(exc.issues[0]))}</p>"
    body += (
        "<h2>Versions</h2><table id='versions'><tr><th>version</th><th>at</th><th>author</th>"
        f"<th>how</th><th>note</th><th>fingerprint</th><th></th></tr>{rows}</table>"
        f"<h2>Current rules</h2><pre id='yaml'>{html.escape(source.current.yaml)}</pre>"
    )
    return _page("Policy", body, signed_in=key.name)


def _parse_actions(text: str) -> list[Action]:
    """``type:target`` per line, optionally followed by a JSON object of params."""
    out: list[Action] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        spec, _, params_text = line.partition(" ")
        action_type, colon, target = spec.partition(":")
        if not colon or not action_type or not target:
            raise ValueError(f"line {number}: expected type:target, got {spec!r}")
        try:
            params = json.loads(params_text) if params_text.strip() else {}
        except ValueError as exc:
            raise ValueError(f"line {number}: params are not JSON ({exc})") from None
        if not isinstance(params, dict):
            raise ValueError(f"line {number}: params must be a JSON object")
        try:
            out.append(Action(action_type, target, params=params))
        except (AegisError, TypeError, ValueError) as exc:
            raise ValueError(f"line {number}: {exc}") from None
        if len(out) > MAX_PLAY_ACTIONS:
            raise ValueError(f"at most {MAX_PLAY_ACTIONS} actions")
    if not out:
        raise ValueError("give at least one action, e.g. read:crm")
    return out


def _playground(
    key_name: str, csrf: str, yaml_text: str, actions: str, result: str = ""
) -> Response[str]:
    form = (
        "<p>Decide actions against pasted YAML. Nothing is stored and nothing runs.</p>"
        f"<form method='post' action='/dashboard/playground'>{csrf}"
        "<label>Policy YAML<br><textarea name='yaml' rows='18'>"
        f"{html.escape(yaml_text)}</textarea></label><br>"
        "<label>Actions, one per line: <code>type:target {json params}</code><br>"
        f"<textarea name='actions' rows='4'>{html.escape(actions)}</textarea></label><br>"
        "<button type='submit'>Evaluate</button></form>"
    )
    return _page("Playground", form + result, signed_in=key_name)


@page("GET", "/dashboard/playground")
async def playground_page(request: Req) -> Response[Any]:
    ctx = context(request)
    user = user_of(request)
    key, cookie = user
    source = ctx.runtime.policy
    text = source.current.yaml if isinstance(source, VersionedPolicy) else ""
    return _playground(key.name, _csrf_field(ctx, cookie), text, EXAMPLE_ACTIONS)


@page("POST", "/dashboard/playground")
async def playground_run(request: Req, data: URLEncodedBody[dict[str, str]]) -> Response[Any]:
    ctx = context(request)
    user = user_of(request)
    key, cookie = user
    check_csrf(ctx, cookie, data)
    yaml_text, actions_text = data.get("yaml", ""), data.get("actions", "")
    try:
        policy = Policy.from_yaml_string(yaml_text, source="yaml")
        actions = _parse_actions(actions_text)
    except PolicyError as exc:
        items = "".join(f"<li>{html.escape(str(i))}</li>" for i in exc.issues)
        result = f"<div class='err' id='errors'><ul>{items}</ul></div>"
        return _playground(key.name, _csrf_field(ctx, cookie), yaml_text, actions_text, result)
    except ValueError as exc:
        result = f"<div class='err' id='errors'>{html.escape(str(exc))}</div>"
        return _playground(key.name, _csrf_field(ctx, cookie), yaml_text, actions_text, result)
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(d[k]))}</td>"
            for k in ("action_type", "target", "risk_level", "approval", "matched_rule")
        )
        + "</tr>"
        for d in (decision_dict(policy.evaluate(a)) for a in actions)
    )
    result = (
        "<h2>Decisions (not stored)</h2><table id='decisions'><tr><th>type</th><th>target</th>"
        f"<th>risk</th><th>approval</th><th>rule</th></tr>{rows}</table>"
    )
    return _playground(key.name, _csrf_field(ctx, cookie), yaml_text, actions_text, result)


HANDLERS = [policy_page, playground_page, playground_run]
