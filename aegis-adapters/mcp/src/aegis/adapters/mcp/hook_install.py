"""``aegis hook claude-code --install/--uninstall``: edit Claude Code's settings.json in place.

Only our own entries are touched (recognised by the ``hook claude-code`` in their command); the
user's other settings and hooks stay as they were. The file is replaced atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from aegis.adapters.mcp.hook_cli import DEFAULT_HOOK_TIMEOUT, MARKER

EVENTS = ("PreToolUse", "PostToolUse")


def settings_path(scope: str) -> Path:
    if scope == "user":
        return Path.home() / ".claude" / "settings.json"
    return Path.cwd() / ".claude" / "settings.json"


def install_claude(path: Path, command: str | None) -> int:
    """Write our PreToolUse/PostToolUse entries (``command``), or remove them (None)."""
    try:
        settings: Any = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, json.JSONDecodeError) as exc:
        print(f"aegis: error: {path}: cannot read it as JSON: {exc}", file=__import__("sys").stderr)
        return 1
    if not isinstance(settings, dict):
        print(f"aegis: error: {path}: not a JSON object", file=__import__("sys").stderr)
        return 1
    hooks = settings.setdefault("hooks", {})
    for event in EVENTS:
        groups = [g for g in hooks.get(event, []) if not _ours(g)]
        if command is not None:
            entry = {"type": "command", "command": command, "timeout": DEFAULT_HOOK_TIMEOUT}
            groups.append({"matcher": "*", "hooks": [entry]})
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


def _ours(group: Any) -> bool:
    if not isinstance(group, dict):
        return False
    return any(
        isinstance(h, dict) and MARKER in str(h.get("command", "")) for h in group.get("hooks", [])
    )
