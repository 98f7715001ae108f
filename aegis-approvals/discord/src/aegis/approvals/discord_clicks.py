"""What an Aegis button on Discord carries, and what a click on it (or the modal it opens)
turns into.

Apart from ``discord`` because both ways a click arrives — the gateway client in ``discord``
and the signed HTTP interactions in ``discord_interactions`` — feed this one function,
``answer``, which turns a click or a modal into ``responder.respond``: the core decides
whether it counts (token binding, the ``discord:<user id>`` allow list, quorum, expiry) and
stores every attempt. Nothing here talks to Discord.

Button ``custom_id``\\ s are ``aegis:<verb>:<ref>`` where ``ref`` is the core's callback token
(request id + a 128-bit HMAC of id and action digest under the store's secret) packed into
43 base64url characters (``aegis.runtime.approval.tokens.compact``): 57 characters in all
(``aegis:approve:<ref>``), inside Discord's 100. Only the core can mint
a valid ref, so a forged ``custom_id`` names no request.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs

from aegis.runtime.approval.channels import Responder
from aegis.runtime.approval.rules import diff_edits
from aegis.runtime.approval.store import ApprovalRequest
from aegis.runtime.approval.tokens import expand as unpack

PREFIX = "aegis:"
Lookup = Callable[[str], Awaitable[ApprovalRequest | None]]


# -- what a click turns into --------------------------------------------------------------------


@attrs.frozen
class Say:
    """Answer the clicking user privately (an ephemeral message)."""

    text: str


@attrs.frozen
class Ask:
    """Open a modal with one text field (a deny reason, or the params to change)."""

    custom_id: str
    title: str
    label: str
    field: str
    default: str = ""
    required: bool = False


Reply = Say | Ask


def _values(components: Any) -> dict[str, str]:
    """Text-input values of a modal submit, by custom_id (action rows or label wrappers)."""
    found: dict[str, str] = {}
    stack = list(components) if isinstance(components, list) else []
    while stack:
        item = stack.pop()
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("custom_id"), str) and isinstance(item.get("value"), str):
            found[item["custom_id"]] = item["value"]
        stack += item.get("components") or []
        if isinstance(item.get("component"), dict):
            stack.append(item["component"])
    return found


def _edits(text: str, shown: Mapping[str, Any]) -> dict[str, Any] | str:
    """The params the approver changed (keys whose value differs from what was shown)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not JSON: {exc.msg} (line {exc.lineno})"
    try:
        return diff_edits(shown, data)  # only what changed, by path: a shown secret stays real
    except ValueError as exc:
        return f"give a JSON object of params ({exc})"


async def answer(
    kind: int,
    data: Mapping[str, Any],
    user_id: str,
    responder: Responder,
    proof: str,
    lookup: Lookup | None = None,
) -> Reply | None:
    """One component click (``kind`` 3) or modal submit (5) -> what to tell the user.

    None: not ours (another bot feature's custom_id); leave it alone.
    """
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id.startswith(PREFIX):
        return None
    verb, _, ref = custom_id.removeprefix(PREFIX).partition(":")
    token = unpack(ref)
    if kind == 3 and verb == "deny":
        return Ask(f"{PREFIX}why:{ref}", "Deny: why?", "Reason (optional)", "reason")
    if kind == 3 and verb == "edit":
        found = await lookup(token) if lookup is not None else None
        shown = json.dumps(found.params if found else {}, indent=1, ensure_ascii=False)
        default = shown if len(shown) <= 4000 else ""
        return Ask(
            f"{PREFIX}edited:{ref}",
            "Edit, then approve",
            "Params (JSON)",
            "params",
            default,
            required=True,
        )
    if kind == 3 and verb == "approve":
        outcome = await responder.respond(token, user_id, "approve", None, None, proof)
    elif kind == 5 and verb == "why":
        reason = _values(data.get("components")).get("reason", "").strip() or None
        outcome = await responder.respond(token, user_id, "deny", reason, None, proof)
    elif kind == 5 and verb == "edited":
        found = await lookup(token) if lookup is not None else None
        edits = _edits(
            _values(data.get("components")).get("params", ""), found.params if found else {}
        )
        if isinstance(edits, str):
            return Say(f"Edit not sent: {edits}")
        if not edits:
            return Say("Nothing changed: use Approve to approve as is.")
        outcome = await responder.respond(token, user_id, "approve", None, edits, proof)
    else:
        return Say("Unknown Aegis button.")
    return Say(outcome.message if not outcome.accepted else f"Recorded: {outcome.message}")


# -- the buttons --------------------------------------------------------------------------------


def components(ref: str) -> list[dict[str, Any]]:
    """The message's Approve / Deny / Edit buttons, each naming the request by ``ref``."""

    def button(label: str, style: int, verb: str) -> dict[str, Any]:
        return {"type": 2, "style": style, "label": label, "custom_id": f"{PREFIX}{verb}:{ref}"}

    return [
        {
            "type": 1,
            "components": [
                button("Approve", 3, "approve"),
                button("Deny", 4, "deny"),
                button("Edit", 2, "edit"),
            ],
        }
    ]
