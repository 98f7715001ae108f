"""Coding-agent hooks: Claude Code's ``PreToolUse``/``PostToolUse`` and Cursor's ``before*`` hooks.

A hook is a new process per tool call that reads one JSON payload on stdin and answers on
stdout. The mapping from a tool call to an ``Action`` (documented, overridable with ``--map``):

==========================  ===================  ==========================================
Claude Code tool            type                 target
==========================  ===================  ==========================================
Bash                        ``bash``             the command line
Write / Edit / MultiEdit    ``write`` / ``edit``  the file path (``NotebookEdit``: ``edit``)
Read                        ``read``             the file path
WebFetch / WebSearch        ``webfetch`` / ...   the URL / the query
``mcp__server__tool``       ``tool``             ``server``
anything else               its name, lowercase  the working directory
==========================  ===================  ==========================================

params are the tool's input; the session and cwd go to the audit (session column, description).

Allowed calls get a write-ahead audit row at ``PreToolUse`` that ``PostToolUse`` completes
with the outcome, so the trail says what happened, not only what was allowed. Every failure
path answers "deny" (malformed payload, unknown event, policy or store error), never "allow".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from aegis.core.action import Action

#: Claude Code tool -> (action type, the tool_input field that is the target)
CLAUDE_TOOLS: dict[str, tuple[str, str]] = {
    "Bash": ("bash", "command"),
    "Write": ("write", "file_path"),
    "Edit": ("edit", "file_path"),
    "MultiEdit": ("edit", "file_path"),
    "NotebookEdit": ("edit", "notebook_path"),
    "Read": ("read", "file_path"),
    "WebFetch": ("webfetch", "url"),
    "WebSearch": ("websearch", "query"),
    "Glob": ("glob", "pattern"),
    "Grep": ("grep", "pattern"),
}


class HookInputError(ValueError):
    """The payload is not what the hook protocol sends; the call is denied."""


@attrs.frozen
class HookCall:
    event: str
    action: Action
    tool_use_id: str | None
    payload: Mapping[str, Any]


def parse_payload(raw: str) -> dict[str, Any]:
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise HookInputError(f"hook payload is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise HookInputError("hook payload is not a JSON object")
    return payload


def claude_call(
    payload: Mapping[str, Any], overrides: Mapping[str, tuple[str, str]] | None = None
) -> HookCall:
    event = _str(payload, "hook_event_name")
    tool = _str(payload, "tool_name")
    tool_input = payload.get("tool_input", {})
    if not isinstance(tool_input, dict):
        raise HookInputError("tool_input is not an object")
    cwd = payload.get("cwd") if isinstance(payload.get("cwd"), str) else ""
    table = {**CLAUDE_TOOLS, **(overrides or {})}
    if tool in table:
        kind, field = table[tool]
        target = tool_input.get(field)
        if not isinstance(target, str) or not target:
            raise HookInputError(f"{tool}: tool_input.{field} is missing or not a string")
    elif tool.startswith("mcp__") and tool.count("__") >= 2:
        _, server, kind = tool.split("__", 2)
        target = server
        if not server or not kind:
            raise HookInputError(f"malformed MCP tool name {tool!r}")
    else:
        kind, target = tool.lower(), cwd or "claude-code"
    session = payload.get("session_id") if isinstance(payload.get("session_id"), str) else None
    tool_use_id = payload.get("tool_use_id")
    action = Action(
        type=kind,
        target=target,
        params=tool_input,
        description=f"claude-code {tool}" + (f" in {cwd}" if cwd else ""),
        session_id=session or None,
        metadata={"hook": "claude-code", "tool": tool},
    )
    return HookCall(event, action, tool_use_id if isinstance(tool_use_id, str) else None, payload)


def cursor_call(payload: Mapping[str, Any]) -> HookCall:
    event = _str(payload, "hook_event_name")
    cwd = _workspace(payload)
    if event == "beforeShellExecution":
        command = _str(payload, "command")
        action = Action("bash", command, {"command": command}, description=f"cursor shell in {cwd}")
    elif event == "beforeMCPExecution":
        tool = _str(payload, "tool_name")
        arguments = payload.get("tool_input", {})
        if isinstance(arguments, str):  # Cursor sends the arguments as a JSON string
            try:
                arguments = json.loads(arguments) if arguments else {}
            except json.JSONDecodeError:
                raise HookInputError("tool_input is not JSON") from None
        if not isinstance(arguments, dict):
            raise HookInputError("tool_input is not an object")
        server = payload.get("url") or payload.get("command") or "cursor"
        action = Action(tool, str(server), arguments, description=f"cursor MCP {tool}")
    elif event == "beforeReadFile":
        path = _str(payload, "file_path")
        action = Action("read", path, {"file_path": path}, description="cursor read")
    else:
        raise HookInputError(f"unsupported Cursor hook event {event!r}")
    conversation = payload.get("conversation_id")
    session = conversation if isinstance(conversation, str) and conversation else None
    action = attrs.evolve(action, session_id=session, metadata={"hook": "cursor"})
    generation = payload.get("generation_id")
    return HookCall(event, action, generation if isinstance(generation, str) else None, payload)


def _workspace(payload: Mapping[str, Any]) -> str:
    cwd = payload.get("cwd")
    if isinstance(cwd, str) and cwd:
        return cwd
    roots = payload.get("workspace_roots")
    if isinstance(roots, list) and roots and isinstance(roots[0], str):
        return roots[0]
    return "?"


def _str(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise HookInputError(f"{key} is missing or not a string")
    return value


# --- answers ----------------------------------------------------------------------------------


def claude_answer(
    decision: str, reason: str, updated_input: Mapping[str, Any] | None = None
) -> str:
    out: dict[str, Any] = {
        "hookEventName": "PreToolUse",
        "permissionDecision": decision,
        "permissionDecisionReason": reason,
    }
    if updated_input is not None:
        out["updatedInput"] = dict(updated_input)
    return json.dumps({"hookSpecificOutput": out})


def cursor_answer(decision: str, reason: str) -> str:
    return json.dumps({"permission": decision, "userMessage": reason, "agentMessage": reason})
