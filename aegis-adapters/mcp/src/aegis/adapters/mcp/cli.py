"""``aegis mcp-proxy`` and ``aegis mcp pins``: added to the CLI by this plugin's hook.

Heavy imports (mcp, the runtime, SQLAlchemy) happen inside the commands, so ``aegis --help``
and every other command do not pay for them.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from cyclopts import App, Parameter

from aegis.cli.errors import CliError, ExitCode

PolicyOption = Annotated[Path, Parameter(help="The policy YAML file.")]
DbOption = Annotated[
    str | None,
    Parameter(help="Audit store URL (default: $AEGIS_AUDIT_URL or sqlite:///aegis_audit.db)."),
]

#: Below the 60 s many MCP clients allow a request, so the client sees our answer, not its own
#: timeout, when nobody answers an approval request.
DEFAULT_APPROVAL_TIMEOUT = 50.0


def db_url(db: str | None) -> str:
    from aegis.runtime import DEFAULT_AUDIT_URL

    return db or os.environ.get("AEGIS_AUDIT_URL") or DEFAULT_AUDIT_URL


def mcp_proxy(
    *command: str,
    policy: PolicyOption,
    config: Annotated[Path | None, Parameter(help="mcpServers JSON with the upstreams.")] = None,
    http: Annotated[str | None, Parameter(help="Serve streamable HTTP on HOST:PORT.")] = None,
    db: DbOption = None,
    name: Annotated[str, Parameter(help="Server name of the upstream after '--'.")] = "upstream",
    approval_handler: Annotated[
        str | None, Parameter(help="Registered approval handler for 'approve' rules.")
    ] = None,
    approval_timeout: float = DEFAULT_APPROVAL_TIMEOUT,
    quarantine: Literal["hide", "approve"] = "hide",
    pins: Annotated[bool, Parameter(help="Pin tools (rug-pull defence).")] = True,
    agent: str | None = None,
) -> int:
    """Serve MCP in front of upstream servers; every tool call is checked, maybe approved, audited.

    Parameters
    ----------
    command
        One upstream over stdio: everything after '--' (e.g. -- npx some-mcp-server --flag).
    quarantine
        What happens to a tool whose pinned definition changed: hidden, or approve-only.
    approval_timeout
        Seconds an 'approve' call waits for an answer before it is refused (expired).
    """
    from aegis.adapters.mcp import config as config_mod

    try:
        if config is not None and command:
            raise config_mod.ConfigError("give either --config or a command after '--', not both")
        if config is not None:
            specs = config_mod.load(config)
        else:
            specs = [config_mod.from_command(command, name)]
    except config_mod.ConfigError as exc:
        raise CliError(str(exc)) from None
    host_port = _host_port(http) if http else None
    if host_port is None and approval_handler == "cli":
        raise CliError("--approval-handler cli reads stdin, which is the MCP channel in stdio mode")
    runtime = _runtime(policy, specs, db, approval_handler, approval_timeout, agent)
    asyncio.run(_serve(runtime, specs, db, quarantine, pins, host_port))
    return ExitCode.OK


def _runtime(
    policy: Path,
    specs: list[Any],
    db: str | None,
    approval_handler: str | None,
    approval_timeout: float,
    agent: str | None,
) -> Any:
    from aegis.adapters.mcp.executor import MCPToolExecutor

    from aegis.core.approval import ApprovalDecision
    from aegis.core.policy import Policy
    from aegis.runtime.approval.handlers import CallbackApprovalHandler
    from aegis.runtime.engine import Runtime

    if not policy.is_file():
        raise CliError(f"{policy}: no such policy file")
    loaded = Policy.from_yaml(policy)
    handler: Any = approval_handler or CallbackApprovalHandler(
        lambda _a, _d: ApprovalDecision.deny(
            reason="no approval channel is configured for this proxy "
            "(start it with --approval-handler NAME)"
        )
    )
    return Runtime(
        executor=MCPToolExecutor({}),
        policy=loaded,
        approval_handler=handler,
        audit=db_url(db),
        approval_timeout=approval_timeout,
        agent_id=agent,
    )


async def _serve(
    runtime: Any,
    specs: list[Any],
    db: str | None,
    quarantine: Literal["hide", "approve"],
    pins: bool,
    host_port: tuple[str, int] | None,
) -> None:
    from aegis.adapters.mcp.pins import PinStore
    from aegis.adapters.mcp.proxy import Proxy
    from aegis.adapters.mcp.serve import serve_http, serve_stdio
    from aegis.adapters.mcp.upstream import Upstream

    upstreams = [Upstream(spec) for spec in specs]
    runtime.executor.servers = {u.name: u for u in upstreams}
    store = PinStore(db_url(db)) if pins else None
    proxy = Proxy(runtime, upstreams, pins=store, quarantine=quarantine)
    try:
        if host_port is None:
            await serve_stdio(proxy)
        else:
            await serve_http(proxy, *host_port)
    finally:
        if store is not None:
            store.close()


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(f"--http {value!r}: expected HOST:PORT, e.g. 127.0.0.1:8808")
    return host, int(port)


# --- aegis mcp pins ---------------------------------------------------------------------------


def pins_list(*, db: DbOption = None, server: str | None = None) -> int:
    """Show pinned tools; quarantined ones wait for 'aegis mcp pins accept SERVER TOOL'."""
    from aegis.adapters.mcp.pins import PinStore

    from aegis.cli.output import print_table

    store = PinStore(db_url(db))
    try:
        rows = [
            (p.server, p.tool, p.status, (p.digest or "-")[:12], p.reason or "", p.updated_at)
            for p in store.pins(server)
        ]
    finally:
        store.close()
    print_table(("Server", "Tool", "Status", "Pinned", "Reason", "Updated"), rows, title="MCP pins")
    return ExitCode.OK


def pins_accept(server: str, tool: str, /, *, db: DbOption = None) -> int:
    """Trust the definition SERVER shows now for TOOL (ends its quarantine); audited."""
    asyncio.run(_accept(server, tool, db_url(db)))
    return ExitCode.OK


async def _accept(server: str, tool: str, url: str) -> None:
    import getpass

    from aegis.adapters.mcp.pins import PinStore, accept_write

    from aegis.cli.output import print_message
    from aegis.core.action import Action
    from aegis.core.approval import ApprovalDecision
    from aegis.core.decision import PolicyDecision
    from aegis.core.result import Result, ResultStatus
    from aegis.core.risk import Approval, RiskLevel
    from aegis.runtime.audit import AuditStore

    store = PinStore(url)
    try:
        pin = store.get(server, tool)
    finally:
        store.close()
    if pin is None:
        raise CliError(f"no pinned tool {tool!r} on server {server!r}", ExitCode.CHECK_FAILED)
    action = Action(
        "mcp_pin_accepted",
        server,
        {"tool": tool, "old_digest": pin.digest, "new_digest": pin.seen_digest},
        description=f"tool pin accepted: {tool}",
    )
    decision = PolicyDecision(action, RiskLevel.HIGH, Approval.APPROVE, "mcp-tool-pinning")
    who = getpass.getuser()
    approval = ApprovalDecision.approve(approver=who, reason="aegis mcp pins accept")
    async with AuditStore(url) as audit:
        # The pin is trusted in the transaction that writes this record, or not at all.
        audit_id = await audit.begin(
            action, decision, approval, side_write=accept_write(server, tool)
        )
        await audit.finish(audit_id, Result(action, ResultStatus.SUCCESS))
    print_message(f"Accepted {tool!r} on {server!r} (digest {(pin.seen_digest or '')[:12]}).")


def register(app: App) -> None:
    app.command(mcp_proxy, name="mcp-proxy")
    mcp_app = App(name="mcp", help="MCP proxy state: tool pins.")
    pins_app = App(name="pins", help="Pinned MCP tools (rug-pull defence).")
    pins_app.default(pins_list)
    pins_app.command(pins_accept, name="accept")
    mcp_app.command(pins_app)
    app.command(mcp_app)
