"""``aegis hook claude-code`` and ``aegis hook cursor``: one process per tool call.

Whatever goes wrong, the answer is a refusal: Claude Code gets exit code 2 with the reason on
stderr (its documented "block" path, which works even when no JSON can be written), Cursor a
``{"permission": "deny"}``. Only what a call needs is imported here.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from aegis.adapters.mcp.cli import DbOption, db_url
from cyclopts import App, Parameter

BLOCK_EXIT = 2
MARKER = "hook claude-code"
DEFAULT_HOOK_TIMEOUT = 60


def claude_code(
    *,
    policy: Annotated[Path | None, Parameter(help="The policy YAML file.")] = None,
    db: DbOption = None,
    map: Annotated[
        Path | None, Parameter(help="JSON: {ToolName: {type, target}} overrides.")
    ] = None,
    wait: Annotated[
        list[str] | None,
        Parameter(help="Rules whose approval waits on --approval-handler ('*': all); others ask."),
    ] = None,
    approval_handler: str | None = None,
    approval_timeout: float = 50.0,
    install: Annotated[bool, Parameter(negative="")] = False,
    uninstall: Annotated[bool, Parameter(negative="")] = False,
    scope: Annotated[Literal["project", "user"], Parameter(name="--scope")] = "project",
    project: Annotated[bool, Parameter(negative="", help="Same as --scope project.")] = False,
    user: Annotated[bool, Parameter(negative="", help="Same as --scope user.")] = False,
) -> int:
    """Claude Code PreToolUse/PostToolUse hook: reads the hook JSON on stdin, answers on stdout.

    With --install / --uninstall, writes or removes the hook entries in .claude/settings.json
    (--project, the default) or ~/.claude/settings.json (--user), keeping every other setting.
    """
    if install or uninstall:
        from aegis.adapters.mcp.hook_install import install_claude, settings_path

        path = settings_path("user" if user else "project" if project else scope)
        if uninstall:
            return install_claude(path, None)
        if policy is None:
            return _usage("--install needs --policy FILE")
        command = _command_line(policy, db, map, wait, approval_handler, approval_timeout)
        return install_claude(path, command)
    try:
        return _claude(policy, db, map, wait, approval_handler, approval_timeout)
    except BaseException as exc:
        _refuse(f"aegis hook: internal error, the tool call is denied: {type(exc).__name__}: {exc}")
        return BLOCK_EXIT


def _claude(
    policy: Path | None,
    db: str | None,
    map_file: Path | None,
    wait: list[str] | None,
    approval_handler: str | None,
    approval_timeout: float,
) -> int:
    from aegis.adapters.mcp import hooks

    try:
        payload = hooks.parse_payload(sys.stdin.read())
        overrides = _overrides(map_file)
        call = hooks.claude_call(payload, overrides)
        if policy is None:
            raise hooks.HookInputError("no --policy given")
    except (hooks.HookInputError, OSError, ValueError) as exc:
        _refuse(f"aegis hook: the tool call is denied: {exc}")
        return BLOCK_EXIT
    runtime = _runtime(policy, db, approval_handler, approval_timeout, "claude-code")
    if call.event == "PreToolUse":
        answer = asyncio.run(_pre(runtime, call, wait or []))
        out = hooks.claude_answer(answer.decision, answer.reason, answer.updated_input)
        sys.stdout.write(out + "\n")
        return 0
    if call.event == "PostToolUse":
        asyncio.run(_post(runtime, call))
        return 0
    _refuse(f"aegis hook: unsupported hook event {call.event!r}; the tool call is denied")
    return BLOCK_EXIT


def cursor(
    *,
    policy: Annotated[Path, Parameter(help="The policy YAML file.")],
    db: DbOption = None,
) -> int:
    """Cursor hook (beforeShellExecution, beforeMCPExecution, beforeReadFile): answers
    {"permission": "allow" | "deny" | "ask"}; approve rules answer "ask"."""
    from aegis.adapters.mcp import hooks

    try:
        call = hooks.cursor_call(hooks.parse_payload(sys.stdin.read()))
        runtime = _runtime(policy, db, None, 50.0, "cursor")
        answer = asyncio.run(_pre(runtime, call, []))
        sys.stdout.write(hooks.cursor_answer(answer.decision, answer.reason) + "\n")
    except BaseException as exc:
        sys.stdout.write(hooks.cursor_answer("deny", f"aegis hook: denied: {exc}") + "\n")
    return 0


async def _pre(runtime: Any, call: Any, wait: list[str]) -> Any:
    from aegis.adapters.mcp.hook_run import pre_tool_use

    async with runtime:
        return await pre_tool_use(runtime, call, wait_rules=set(wait))


async def _post(runtime: Any, call: Any) -> None:
    from aegis.adapters.mcp.hook_run import post_tool_use

    async with runtime:
        await post_tool_use(runtime, call)


def _runtime(
    policy: Path, db: str | None, approval_handler: str | None, timeout: float, agent: str
) -> Any:
    from aegis.adapters.base import BaseExecutor
    from aegis.core.policy import Policy
    from aegis.runtime.engine import Runtime

    class _NotHere(BaseExecutor):
        """The coding agent runs the tool; a hook never executes anything itself."""

        async def execute(self, action: Any) -> Any:
            raise RuntimeError("a hook does not execute tools")

    return Runtime(
        executor=_NotHere(),
        policy=Policy.from_yaml(policy),
        approval_handler=approval_handler or "cli",
        audit=db_url(db),
        approval_timeout=timeout,
        agent_id=agent,
    )


def _overrides(path: Path | None) -> dict[str, tuple[str, str]]:
    if path is None:
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    out: dict[str, tuple[str, str]] = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object of ToolName -> {{type, target}}")
    for tool, spec in data.items():
        if not (
            isinstance(spec, dict)
            and isinstance(spec.get("type"), str)
            and isinstance(spec.get("target"), str)
        ):
            raise ValueError(f'{path}: {tool}: expected {{"type": ..., "target": FIELD}}')
        out[tool] = (spec["type"], spec["target"])
    return out


def _command_line(
    policy: Path,
    db: str | None,
    map_file: Path | None,
    wait: list[str] | None,
    approval_handler: str | None,
    approval_timeout: float,
) -> str:
    import shlex

    exe = Path(sys.argv[0]).resolve() if Path(sys.argv[0]).name == "aegis" else "aegis"
    parts = [str(exe), "hook", "claude-code", "--policy", str(policy.resolve())]
    url = db_url(db)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = f"sqlite:///{Path.cwd() / url.removeprefix('sqlite:///')}"  # hooks run anywhere
    parts += ["--db", url]
    if map_file is not None:
        parts += ["--map", str(map_file.resolve())]
    for rule in wait or []:
        parts += ["--wait", rule]
    if approval_handler:
        parts += [
            "--approval-handler",
            approval_handler,
            "--approval-timeout",
            str(approval_timeout),
        ]
    return shlex.join(parts)


def _refuse(message: str) -> None:
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _usage(message: str) -> int:
    _refuse(f"aegis: error: {message}")
    return 2


def register(app: App) -> None:
    hook_app = App(name="hook", help="Coding-agent hooks: Claude Code and Cursor.")
    hook_app.command(claude_code, name="claude-code")
    hook_app.command(cursor, name="cursor")
    app.command(hook_app)
