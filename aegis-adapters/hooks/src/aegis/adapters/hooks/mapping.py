"""Coding-agent hook payloads to Actions, and the answers each agent reads back.

Claude Code (``PreToolUse``/``PostToolUse``), Codex (the same wire format, its own tool names)
and Cursor (``before*``/``after*`` events, a ``permission`` answer). The mapping (documented,
overridable with ``--map`` for Claude Code and Codex):

==========================  ===================  ==========================================
tool                        type                 target
==========================  ===================  ==========================================
Bash (both)                 ``bash``             the command line
Write / Edit / MultiEdit    ``write`` / ``edit``  the file path (``NotebookEdit``: ``edit``)
Read                        ``read``             the file path
WebFetch / WebSearch        ``webfetch`` / ...   the URL / the query
Codex ``apply_patch``       ``edit``             each file the patch touches (strictest wins)
``mcp__server__tool``       ``tool``             ``server``
anything else               its name, lowercase  the working directory
==========================  ===================  ==========================================

params are the tool's input; the session and cwd go to the audit (session column, description).
Every failure path answers "deny" (malformed payload, unknown event, policy or store error).
"""

from __future__ import annotations

import hashlib
import json
import os
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


#: Codex tools other than MCP tools and ``apply_patch`` (handled on its own: a patch names files).
CODEX_TOOLS: dict[str, tuple[str, str]] = {"Bash": ("bash", "command")}


class HookInputError(ValueError):
    """The payload is not what the hook protocol sends; the call is denied."""


@attrs.frozen
class HookCall:
    event: str
    action: Action
    tool_use_id: str | None
    payload: Mapping[str, Any]
    #: More actions the same call amounts to (every file of a patch): the strictest decides.
    candidates: tuple[Action, ...] = ()
    #: The ``--map`` overrides it was mapped with, so that an approver's edit is mapped alike.
    overrides: Mapping[str, tuple[str, str]] = attrs.field(factory=dict, eq=False, repr=False)


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
    call = _tool_call(payload, "claude-code", {**CLAUDE_TOOLS, **(overrides or {})})
    return attrs.evolve(call, overrides=dict(overrides or {}))


def edited_action(call: HookCall, tool_input: dict[str, Any]) -> Action:
    """The action ``call`` amounts to with an approver's edited ``tool_input``, mapped as the
    call was: the target follows the input (an edited Bash command is a new target), so the
    policy decides, and the audit records, the call that will run.

    Only Claude Code reads an edited input back (``updatedInput``); Codex and Cursor would run
    the call as submitted, so for them an edit raises (the approval is then denied).
    """
    agent = call.action.metadata.get("hook")
    if agent != "claude-code":
        raise HookInputError(
            f"{agent} cannot run an edited call (its hooks take no edited input); "
            "approve it as submitted or deny it"
        )
    return claude_call({**call.payload, "tool_input": tool_input}, call.overrides).action


def codex_call(
    payload: Mapping[str, Any], overrides: Mapping[str, tuple[str, str]] | None = None
) -> HookCall:
    """Codex sends Claude Code's wire format; its tools are ``Bash``, ``apply_patch`` (the
    patch body in ``tool_input.command``) and MCP tools as ``mcp__server__tool``."""
    tool_input = payload.get("tool_input")
    if payload.get("tool_name") == "apply_patch" and isinstance(tool_input, dict):
        patch = tool_input.get("command")
        if not isinstance(patch, str) or not patch:
            raise HookInputError("apply_patch: tool_input.command is missing or not a string")
        cwd = payload.get("cwd") if isinstance(payload.get("cwd"), str) else ""
        files = patch_files(patch, str(cwd or ""))
        if not files:
            raise HookInputError("apply_patch: the patch names no file")
        call = _tool_call(payload, "codex", {"apply_patch": ("edit", "command")}, target=files[0])
        # Every file the patch touches is decided; the strictest answer is the one that counts.
        others = tuple(attrs.evolve(call.action, target=f) for f in files[1:])
        return attrs.evolve(call, candidates=others)
    return _tool_call(payload, "codex", {**CODEX_TOOLS, **(overrides or {})})


def patch_files(patch: str, cwd: str = "") -> list[str]:
    """The files an ``apply_patch`` body adds, updates, deletes or moves to, made absolute."""
    found: list[str] = []
    for line in patch.splitlines():
        for marker in _PATCH_MARKERS:
            if line.startswith(marker):
                path = line[len(marker) :].strip()
                if path:
                    full = os.path.normpath(os.path.join(cwd, path)) if cwd else path
                    if full not in found:
                        found.append(full)
    return found


_PATCH_MARKERS = ("*** Add File: ", "*** Update File: ", "*** Delete File: ", "*** Move to: ")


def _tool_call(
    payload: Mapping[str, Any],
    agent: str,
    table: Mapping[str, tuple[str, str]],
    *,
    target: str | None = None,
) -> HookCall:
    event = _str(payload, "hook_event_name")
    tool = _str(payload, "tool_name")
    tool_input = payload.get("tool_input", {})
    if not isinstance(tool_input, dict):
        raise HookInputError("tool_input is not an object")
    cwd = payload.get("cwd") if isinstance(payload.get("cwd"), str) else ""
    if tool in table:
        kind, field = table[tool]
        if target is None:
            target = tool_input.get(field)
        if not isinstance(target, str) or not target:
            raise HookInputError(f"{tool}: tool_input.{field} is missing or not a string")
    elif tool.startswith("mcp__") and tool.count("__") >= 2:
        _, server, kind = tool.split("__", 2)
        target = server
        if not server or not kind:
            raise HookInputError(f"malformed MCP tool name {tool!r}")
    else:
        kind, target = tool.lower(), cwd or agent
    session = payload.get("session_id") if isinstance(payload.get("session_id"), str) else None
    tool_use_id = payload.get("tool_use_id")
    action = Action(
        type=kind,
        target=target,
        params=tool_input,
        description=f"{agent} {tool}" + (f" in {cwd}" if cwd else ""),
        session_id=session or None,
        metadata={"hook": agent, "tool": tool},
    )
    return HookCall(event, action, tool_use_id if isinstance(tool_use_id, str) else None, payload)


def cursor_call(payload: Mapping[str, Any]) -> HookCall:
    event = _str(payload, "hook_event_name")
    cwd = _workspace(payload)
    if event in ("beforeShellExecution", "afterShellExecution"):
        command = _str(payload, "command")
        action = Action("bash", command, {"command": command}, description=f"cursor shell in {cwd}")
        key: tuple[Any, ...] = ("shell", command)
    elif event in ("beforeMCPExecution", "afterMCPExecution"):
        tool = _str(payload, "tool_name")
        raw = payload.get("tool_input", {})
        arguments = raw
        if isinstance(raw, str):  # Cursor sends the arguments as a JSON string
            try:
                arguments = json.loads(raw) if raw else {}
            except json.JSONDecodeError:
                raise HookInputError("tool_input is not JSON") from None
        if not isinstance(arguments, dict):
            raise HookInputError("tool_input is not an object")
        server = payload.get("url") or payload.get("command") or "cursor"
        action = Action(tool, str(server), arguments, description=f"cursor MCP {tool}")
        key = ("mcp", tool, str(server), json.dumps(arguments, sort_keys=True))
    elif event == "beforeReadFile":
        path = _str(payload, "file_path")
        action = Action("read", path, {"file_path": path}, description="cursor read")
        key = ("read", path)
    else:
        raise HookInputError(f"unsupported Cursor hook event {event!r}")
    conversation = payload.get("conversation_id")
    session = conversation if isinstance(conversation, str) and conversation else None
    action = attrs.evolve(action, session_id=session, metadata={"hook": "cursor"})
    # Cursor gives a call no id of its own, and its after-event carries none: the before and the
    # after of one call are paired by conversation, generation and what ran.
    generation = payload.get("generation_id")
    digest = hashlib.sha256(json.dumps([session, generation, *key]).encode()).hexdigest()
    return HookCall(event, action, f"cursor:{digest[:40]}", payload)


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
