"""Aegis for MCP: govern tool calls in code and in front of servers (``aegis mcp-proxy``).

The mapping is the same everywhere, so one policy covers both: an MCP tool call is
``Action(type=<tool name>, target=<server name>, params=<arguments>)``.

This module imports neither ``mcp`` nor the runtime at import time: the plugin's entry point
imports it on every ``aegis`` start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from aegis.core.action import Action
from aegis.core.decision import PolicyDecision
from aegis.core.result import Result, ResultStatus
from aegis.core.risk import Approval

if TYPE_CHECKING:
    from aegis.runtime.engine import Runtime

__all__ = [
    "AegisMCPToolFilter",
    "ToolCheck",
    "explain",
    "govern_mcp_tool_call",
    "tool_action",
]


def tool_action(
    tool_name: str,
    server_name: str,
    arguments: Mapping[str, Any] | None = None,
    *,
    description: str = "",
) -> Action:
    """The documented mapping: type = tool name, target = server name, params = arguments."""
    return Action(
        type=tool_name,
        target=server_name,
        params=dict(arguments or {}),
        description=description or f"MCP tool {tool_name} on {server_name}",
        metadata={"mcp": "tools/call"},
    )


async def govern_mcp_tool_call(
    *,
    runtime: Runtime,
    tool_name: str,
    arguments: Mapping[str, Any] | None = None,
    server_name: str = "default",
    description: str = "",
) -> Result:
    """Take one MCP tool call through the whole pipeline (policy, approval, executor, audit).

    The runtime's executor makes the call: give it an ``MCPToolExecutor`` (from
    ``aegis.adapters.mcp.executor``) holding your client sessions and ``result.data`` is the
    server's ``CallToolResult``; with any other executor, that executor's result comes back.
    """
    action = tool_action(tool_name, server_name, arguments, description=description)
    return await runtime.run_one(action)


@attrs.frozen
class ToolCheck:
    """The answer of ``AegisMCPToolFilter.check``: may the caller make this call itself?

    ``ok`` is True only when the policy lets the call run without a human (an ``auto`` rule).
    A call that needs approval is *not* ok here: a check cannot hold a human's answer for a
    call made later, so such calls go through ``call_tool`` / ``govern_mcp_tool_call``.
    """

    ok: bool
    decision: PolicyDecision
    result: Result
    reason: str

    @property
    def needs_approval(self) -> bool:
        return self.decision.requires_approval

    @property
    def blocked(self) -> bool:
        return not self.decision.is_allowed


class AegisMCPToolFilter:
    """Check or run MCP tool calls against the runtime's policy.

    ``check`` decides without running anything (recorded in the audit as a dry run);
    ``call_tool`` runs the call through the full pipeline like ``govern_mcp_tool_call``.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def check(
        self, server: str, tool: str, arguments: Mapping[str, Any] | None = None
    ) -> ToolCheck:
        result = await self.runtime.run_one(tool_action(tool, server, arguments), dry_run=True)
        decision = result.decision
        if decision is None:  # the runtime always decides; a missing decision is a bug: refuse
            raise RuntimeError("the runtime returned no decision")
        ok = result.status is ResultStatus.SKIPPED and decision.approval is Approval.AUTO
        if ok:
            reason = f"allowed by rule {decision.matched_rule or '(defaults)'}"
        elif decision.approval is Approval.APPROVE:
            reason = "needs a human's approval: run it with call_tool() or govern_mcp_tool_call()"
        else:
            reason = result.reason or decision.reason or "blocked"
        return ToolCheck(ok=ok, decision=decision, result=result, reason=reason)

    async def call_tool(
        self, server: str, tool: str, arguments: Mapping[str, Any] | None = None
    ) -> Result:
        return await govern_mcp_tool_call(
            runtime=self.runtime, tool_name=tool, arguments=arguments, server_name=server
        )


def explain(result: Result) -> str:
    """What the client is told about a call that was not run or failed (``Result.refusal``)."""
    return result.refusal()
