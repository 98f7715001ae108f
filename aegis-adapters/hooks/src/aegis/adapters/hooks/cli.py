"""``aegis hook claude-code|codex|cursor`` and ``aegis hook daemon``: added by this plugin.

The agent commands decide in this process by default (``--daemon off``): the CLI's own start-up
(cyclopts, plugin loading) already costs more than the daemon saves. The command to install in
an agent is ``aegis-hook`` (``aegis_hook``), which ``--install`` writes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

from cyclopts import App, Parameter

DbOption = Annotated[
    str | None,
    Parameter(help="Audit store URL (default: $AEGIS_AUDIT_URL or sqlite:///aegis_audit.db)."),
]
MapOption = Annotated[Path | None, Parameter(help="JSON: {ToolName: {type, target}} overrides.")]
WaitOption = Annotated[
    list[str] | None,
    Parameter(help="Rules whose approval waits on --approval-handler ('*': all); others ask."),
]
Scope = Literal["project", "user"]


def _agent_command(agent: str, installable: bool) -> Callable[..., int]:
    def command(
        *,
        policy: Annotated[Path | None, Parameter(help="The policy YAML file.")] = None,
        db: DbOption = None,
        map: MapOption = None,
        wait: WaitOption = None,
        approval_handler: str | None = None,
        approval_timeout: float = 50.0,
        report_timeout: Annotated[
            float, Parameter(help="Seconds before an unreported call is closed as such.")
        ] = 3600.0,
        daemon: Literal["auto", "running", "off"] = "off",
        install: Annotated[bool, Parameter(negative="")] = False,
        uninstall: Annotated[bool, Parameter(negative="")] = False,
        scope: Annotated[Scope, Parameter(name="--scope")] = "project",
        project: Annotated[bool, Parameter(negative="")] = False,
        user: Annotated[bool, Parameter(negative="")] = False,
    ) -> int:
        import aegis_hook

        if not 0 < approval_timeout < 86400:
            return _usage("--approval-timeout must be a positive number of seconds")
        if not 0 <= report_timeout < float("inf"):
            return _usage("--report-timeout must be a finite number of seconds, 0 or more")
        if install or uninstall:
            if not installable:
                return _usage(f"--install is not supported for {agent}; see the README")
            from aegis.adapters.hooks.install import hook_timeout, settings_path
            from aegis.adapters.hooks.install import install as write

            path = settings_path(agent, "user" if user else "project" if project else scope)
            if uninstall:
                return write(path, None, agent)
            if policy is None:
                return _usage("--install needs --policy FILE")
            args = _args(policy, db, map, wait, approval_handler, approval_timeout, report_timeout)
            limit = hook_timeout(approval_timeout if wait else 0.0)
            return write(path, _command_line(agent, args), agent, limit)
        if policy is None:
            return aegis_hook.deny(agent, "aegis hook: the tool call is denied: no --policy given")
        argv = [
            agent,
            *_args(policy, db, map, wait, approval_handler, approval_timeout, report_timeout),
            "--daemon",
            daemon,
        ]
        return aegis_hook.main(argv)

    command.__doc__ = {
        "claude-code": "Claude Code PreToolUse/PostToolUse hook: hook JSON on stdin, the answer "
        "on stdout. --install / --uninstall edit .claude/settings.json (--project) or "
        "~/.claude/settings.json (--user), keeping every other setting.",
        "codex": "Codex PreToolUse/PostToolUse hook (Claude Code's wire format; deny is exit 2 "
        "with the reason on stderr). --install / --uninstall edit .codex/hooks.json or "
        "~/.codex/hooks.json.",
        "cursor": "Cursor hook (beforeShellExecution, beforeMCPExecution, beforeReadFile and "
        'the after* events): answers {"permission": "allow" | "deny" | "ask"}.',
    }[agent]
    return command


def daemon(
    *,
    policy: Annotated[Path, Parameter(help="The policy YAML file.")],
    db: DbOption = None,
    map: MapOption = None,
    wait: WaitOption = None,
    approval_handler: str | None = None,
    approval_timeout: float = 50.0,
    report_timeout: float = 3600.0,
    socket: Annotated[
        Path | None, Parameter(help="Socket path (default: per configuration).")
    ] = None,
    idle: Annotated[float, Parameter(help="Exit after this many idle seconds.")] = 3600.0,
) -> int:
    """Run the hook daemon in the foreground for hooks configured with these options.

    ``aegis-hook`` clients with the same options use it (and start one themselves when none
    runs); it keeps the policy, the audit store and the runtimes open between calls.
    """
    import asyncio
    import logging

    import aegis_hook
    from aegis.adapters.hooks.daemon import Daemon
    from aegis.adapters.hooks.handle import HookOptions

    config = aegis_hook.options(
        str(policy),
        db,
        str(map) if map else None,
        wait or [],
        approval_handler,
        approval_timeout,
        report_timeout,
    )
    path = socket or Path(aegis_hook.socket_path(config))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    print(f"aegis hook daemon: {path}", file=sys.stderr)
    return asyncio.run(Daemon(HookOptions.from_json(config), path, idle=idle).serve())


def _args(
    policy: Path,
    db: str | None,
    map_file: Path | None,
    wait: list[str] | None,
    approval_handler: str | None,
    approval_timeout: float,
    report_timeout: float,
) -> list[str]:
    import aegis_hook

    parts = ["--policy", str(policy.resolve()), "--db", aegis_hook.absolute_db(db)]
    if map_file is not None:
        parts += ["--map", str(map_file.resolve())]
    for rule in wait or []:
        parts += ["--wait", rule]
    if approval_handler:
        parts += ["--approval-handler", approval_handler]
    if approval_timeout != 50.0:
        parts += ["--approval-timeout", str(approval_timeout)]
    if report_timeout != 3600.0:
        parts += ["--report-timeout", str(report_timeout)]
    return parts


def _command_line(agent: str, args: list[str]) -> str:
    import shlex

    client = Path(sys.executable).parent / "aegis-hook"
    exe = str(client) if client.exists() else "aegis-hook"
    return shlex.join([exe, agent, *args])


def _usage(message: str) -> int:
    print(f"aegis: error: {message}", file=sys.stderr)
    return 2


def register(app: App) -> None:
    hook_app = App(name="hook", help="Coding-agent hooks: Claude Code, Codex and Cursor.")
    hook_app.command(_agent_command("claude-code", True), name="claude-code")
    hook_app.command(_agent_command("codex", True), name="codex")
    hook_app.command(_agent_command("cursor", False), name="cursor")
    hook_app.command(daemon, name="daemon")
    app.command(hook_app)
