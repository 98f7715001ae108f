"""``aegis hook claude-code|codex --install/--uninstall``: edit the agent's hook file in place.

Claude Code's ``settings.json`` and Codex's ``hooks.json`` share one shape
(``hooks.<Event>[{matcher, hooks: [{type, command, timeout}]}]``). Only our own entries are
touched (recognised by ``hook <agent>`` in their command); the user's other settings and hooks
stay as they were. The file is replaced atomically.

Claude Code lets a tool call through when its ``PreToolUse`` hook times out, cannot start or
exits oddly, unless the entry says ``onFailure: "block"`` (Claude Code 2.1.295 and later), so
ours does; and its timeout outlasts the longest approval wait the hook was given, so the
agent does not kill a hook still waiting on a human.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

EVENTS = ("PreToolUse", "PostToolUse")
#: Events only some agents send: Claude Code reports a failed tool with its own event.
EXTRA_EVENTS = {"claude-code": ("PostToolUseFailure",)}
#: Seconds the agent waits for the hook at the least.
DEFAULT_HOOK_TIMEOUT = 60
#: Seconds the hook may need beyond its approval wait: its start, the daemon's grace (5 s),
#: the record written after the answer.
HOOK_MARGIN = 30
_FILES = {"claude-code": (".claude", "settings.json"), "codex": (".codex", "hooks.json")}


def settings_path(agent: str, scope: str) -> Path:
    folder, name = _FILES[agent]
    base = Path.home() if scope == "user" else Path.cwd()
    return base / folder / name


def hook_timeout(approval_timeout: float) -> int:
    """Seconds the agent should wait for a hook that may wait ``approval_timeout`` on a human."""
    return max(DEFAULT_HOOK_TIMEOUT, math.ceil(approval_timeout) + HOOK_MARGIN)


def install(
    path: Path,
    command: str | None,
    agent: str = "claude-code",
    timeout: int = DEFAULT_HOOK_TIMEOUT,
) -> int:
    """Write our PreToolUse/PostToolUse entries (``command``), or remove them (None)."""
    marker = f"hook {agent}"
    try:
        settings: Any = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, json.JSONDecodeError) as exc:
        print(f"aegis: error: {path}: cannot read it as JSON: {exc}", file=sys.stderr)
        return 1
    if not isinstance(settings, dict) or not isinstance(settings.get("hooks", {}), dict):
        print(f"aegis: error: {path}: not a JSON object with a 'hooks' object", file=sys.stderr)
        return 1
    hooks = settings.setdefault("hooks", {})
    for event in (*EVENTS, *EXTRA_EVENTS.get(agent, ())):
        groups = [g for g in hooks.get(event, []) if not _ours(g, marker)]
        if command is not None:
            entry: dict[str, Any] = {"type": "command", "command": command, "timeout": timeout}
            if agent == "claude-code" and event == "PreToolUse":
                entry["onFailure"] = "block"
            groups.append({"matcher": "*" if agent == "claude-code" else ".*", "hooks": [entry]})
        if groups:
            hooks[event] = groups
        else:
            hooks.pop(event, None)
    if not hooks:
        settings.pop("hooks")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".settings.", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(settings, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)
    verb = "installed in" if command is not None else "removed from"
    print(f"Aegis hook {verb} {path}")
    return 0


def _ours(group: Any, marker: str) -> bool:
    if not isinstance(group, dict):
        return False
    return any(
        isinstance(h, dict) and marker in str(h.get("command", "")) for h in group.get("hooks", [])
    )
