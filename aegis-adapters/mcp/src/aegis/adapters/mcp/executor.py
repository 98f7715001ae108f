"""``MCPToolExecutor``: the executor that makes an allowed tool call on a real MCP session.

It runs only what the runtime hands it (after policy, approval and the write-ahead audit row):
the tool named by ``action.type`` on the server named by ``action.target``, with
``action.params`` as arguments. Per-call context that is not part of the decision (the client's
progress callback) travels in a context variable, so it can never change what was decided.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aegis.adapters.base import BaseExecutor
from aegis.core.action import Action
from aegis.core.result import Result, ResultStatus

ProgressCallback = Callable[[float, float | None, str | None], Awaitable[None]]

#: Set by the proxy around ``run_one`` so progress from the upstream reaches the caller.
progress_callback: contextvars.ContextVar[ProgressCallback | None] = contextvars.ContextVar(
    "aegis_mcp_progress", default=None
)


class ToolCaller(Protocol):
    """What the executor needs from a server connection (an ``mcp.ClientSession`` is one)."""

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        read_timeout_seconds: float | None = None,
        progress_callback: Any = None,
    ) -> Any: ...


class MCPToolExecutor(BaseExecutor):
    """Calls ``action.type`` on ``servers[action.target]``; the result's data is the server's
    ``CallToolResult``. A tool that answers ``is_error`` is a failed action (it ran)."""

    def __init__(
        self, servers: Mapping[str, ToolCaller], *, read_timeout: float | None = None
    ) -> None:
        self.servers = servers
        self.read_timeout = read_timeout

    async def execute(self, action: Action) -> Result:
        server = self.servers.get(action.target)
        if server is None:
            return Result(
                action, ResultStatus.FAILED, error=f"no MCP server named {action.target!r}"
            )
        kind = action.metadata.get("mcp", "tools/call")
        if kind == "resources/read":
            data = await server.read_resource(str(action.params["uri"]))  # type: ignore[attr-defined]
            return Result(action, ResultStatus.SUCCESS, data=data)
        if kind == "prompts/get":
            params = action.params
            data = await server.get_prompt(params["name"], params.get("arguments"))  # type: ignore[attr-defined]
            return Result(action, ResultStatus.SUCCESS, data=data)
        answer = await server.call_tool(
            action.type,
            dict(action.params),
            read_timeout_seconds=self.read_timeout,
            progress_callback=progress_callback.get(),
        )
        if getattr(answer, "is_error", False):
            return Result(action, ResultStatus.FAILED, data=answer, error=tool_text(answer))
        return Result(action, ResultStatus.SUCCESS, data=answer)


def tool_text(answer: Any, limit: int = 2000) -> str:
    """The text blocks of a ``CallToolResult``, joined (for the audit's error column)."""
    parts = [getattr(block, "text", "") for block in getattr(answer, "content", None) or ()]
    text = " ".join(p for p in parts if p) or "the tool reported an error"
    return text[:limit]
