"""What Slack shows and what comes back from it, as plain data: no I/O here, so each piece
(the message, the modals, reading a submitted modal, the thread command) is tested directly.

Everything taken from a request is escaped for mrkdwn, so an action's target or params cannot
ping ``@channel`` or render a link in the approver's message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from aegis.core.redact import REDACTED
from aegis.runtime.approval.channels import describe
from aegis.runtime.approval.rules import diff_edits
from aegis.runtime.approval.store import ApprovalRequest

APPROVE, DENY, EDIT = "aegis_approve", "aegis_deny", "aegis_edit"
_COMMAND = re.compile(r"(?P<approve>approve)|deny(?:\s+(?P<reason>\S.*))?", re.I | re.S)
_MAX = 2900  # Slack caps a text object at 3000 characters


def esc(text: object) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _who(identity: str) -> str:
    channel, _, user = identity.partition(":")
    return f"<@{user}>" if channel == "slack" and re.fullmatch(r"[A-Z0-9]+", user) else identity


def status_line(request: ApprovalRequest) -> str:
    """The settled message's last line: "approved by @alice", "denied by @bob: reason" ..."""
    if request.state == "approved":
        edited = " with edits" if request.edits else ""
        return f":white_check_mark: *approved* by {', '.join(map(_who, request.approvers))}{edited}"
    denial = next((a for a in request.answers if a.accepted and a.verdict == "deny"), None)
    if request.state == "denied" and denial is not None:
        because = f": {esc(denial.reason)}" if denial.reason else ""
        return f":x: *denied* by {_who(denial.responder)}{because}"
    if request.state == "expired":
        return ":hourglass: *expired*: nobody decided in time; the action did not run"
    return f"*{esc(request.state)}*: {esc(request.outcome or '')}"


def message_blocks(request: ApprovalRequest, token: str | None) -> list[dict[str, Any]]:
    """The request as Block Kit: with ``token`` the buttons, without it the final status."""
    d = describe(request)
    params = json.dumps(d["params"], ensure_ascii=False, indent=1, default=str)
    params = params if len(params) <= 2800 else params[:2800] + " …"
    expires = f"<!date^{int(request.expires_at)}^{{date_short_pretty}} {{time}}|{d['expires_at']}>"
    facts = {
        "Risk": d["risk_level"],
        "Rule": d["matched_rule"] or "(defaults)",
        "Agent": d["agent_id"] or "-",
        "Session": d["session_id"] or "-",
        "May answer": d["who_may_answer"],
    }
    fields = [_md(f"*{k}*\n{esc(v)[:1900]}") for k, v in facts.items()]
    title = f"*Approval needed:* `{esc(d['action_type'])}` → `{esc(d['target'])}`"
    blocks = [_section(title), *([_section(esc(d["description"]))] if d["description"] else [])]
    blocks += [{"type": "section", "fields": [*fields, _md(f"*Expires*\n{expires}")]}]
    blocks += [_section(f"```{esc(params)}```")]
    if token is None:
        return [*blocks, _context(status_line(request))]
    buttons = [
        _button("Approve", APPROVE, token, "primary"),
        _button("Deny", DENY, token, "danger"),
    ]
    if request.requirements.quorum == 1:  # the core refuses edits that need several approvers
        buttons.append(_button("Edit…", EDIT, token))
    reply = "Or reply in this thread with exactly `approve` or `deny <reason>`."
    return [*blocks, {"type": "actions", "block_id": "aegis", "elements": buttons}, _context(reply)]


def _md(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text[:_MAX]}


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _md(text)}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [_md(text)]}


def _button(label: str, action_id: str, token: str, style: str | None = None) -> dict[str, Any]:
    button = {"type": "button", "text": _plain(label), "action_id": action_id, "value": token}
    return {**button, "style": style} if style else button


def _editable(value: Any) -> str | None:
    """The text an input starts with, or None for a value that is not edited here (a redacted
    secret is not the real value, so it is never offered, nor written back)."""
    if isinstance(value, str):
        return None if value == REDACTED or value.startswith("hmac-sha256:") else value
    return json.dumps(value, ensure_ascii=False, default=str)


def edit_view(request: ApprovalRequest, token: str, channel: str | None) -> dict[str, Any]:
    """The Edit modal: one input per top-level param, then an optional reason."""
    blocks = [_section(f"`{esc(request.action_type)}` → `{esc(request.target)}`")]
    for name, value in list(request.params.items())[:40]:
        initial = _editable(value)
        if initial is None or len(initial) > _MAX or len(name) > 200:
            blocks.append(_context(f"{esc(name)}: not editable here"))
            continue
        element = {"type": "plain_text_input", "action_id": "value", "initial_value": initial,
                   "multiline": len(initial) > 60}  # fmt: skip
        hint = _plain("text" if isinstance(value, str) else "JSON")
        label = _plain(name[:150])
        blocks.append(
            {"type": "input", "block_id": f"param:{name}", "label": label, "hint": hint,
             "element": element}
        )  # fmt: skip
    return _modal(EDIT, "Edit and approve", "Approve", token, channel, blocks)


def deny_view(token: str, channel: str | None) -> dict[str, Any]:
    return _modal(DENY, "Deny this action", "Deny", token, channel, [])


def _modal(
    callback_id: str, title: str, submit: str, token: str, channel: str | None, blocks: list[Any]
) -> dict[str, Any]:
    reason = {"type": "plain_text_input", "action_id": "value", "max_length": 500}
    blocks.append(
        {"type": "input", "block_id": "reason", "optional": True, "label": _plain("Reason"),
         "element": reason}
    )  # fmt: skip
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": _plain(title),
        "submit": _plain(submit),
        "close": _plain("Cancel"),
        "private_metadata": json.dumps({"token": token, "channel": channel}),
        "blocks": blocks,
    }


def _value(values: Mapping[str, Any], block_id: str) -> str | None:
    found = ((values.get(block_id) or {}).get("value") or {}).get("value")
    return found if isinstance(found, str) else None


def read_reason(values: Mapping[str, Any]) -> str | None:
    return (_value(values, "reason") or "").strip() or None


def read_edits(
    request: ApprovalRequest, values: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """(the changed params or None, errors by block id) from a submitted Edit modal."""
    edits: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, original in request.params.items():
        text = _value(values, f"param:{name}")
        if text is None or _editable(original) is None:
            continue
        if isinstance(original, str):
            new: Any = text
        else:
            try:
                new = json.loads(text)
            except ValueError:
                errors[f"param:{name}"] = "not valid JSON (text in double quotes)"
                continue
        try:  # only what changed, by path: a shown secret inside a nested param stays real
            edits.update(diff_edits({name: original}, {name: new}))
        except ValueError as exc:
            errors[f"param:{name}"] = str(exc)
    return (edits or None), errors


def parse_command(text: str) -> tuple[str, str | None] | None:
    """("approve", None) / ("deny", reason) when the *whole* text is a command, else None."""
    found = _COMMAND.fullmatch(text.strip())
    if found is None:
        return None
    return ("approve", None) if found.group("approve") else ("deny", found.group("reason"))
