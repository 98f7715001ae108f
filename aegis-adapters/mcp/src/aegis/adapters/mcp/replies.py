"""What goes back to the MCP client: a runtime ``Result`` as a tool result or a protocol
error, and progress forwarded while a call runs.

Apart from ``proxy`` because both transports answer with it: the SDK's handlers in ``proxy``
and the stdio fast path (``fastpath``), which answers ``tools/call`` without the SDK.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import mcp_types as types
from aegis.adapters.mcp import explain

from aegis.core.result import Result


def progress_forwarder(ctx: Any) -> Any:
    """The request's progress callback (None when the client asked for no progress)."""
    meta = getattr(ctx, "meta", None)
    token = meta.get("progress_token") if isinstance(meta, Mapping) else None
    if token is None:
        token = getattr(meta, "progress_token", None)
    session = getattr(ctx, "session", None)
    if token is None or session is None:
        return None

    async def forward(progress: float, total: float | None, message: str | None) -> None:
        with contextlib.suppress(Exception):
            await session.send_progress_notification(token, progress, total, message)

    return forward


def to_call_result(result: Result) -> types.CallToolResult:
    """What the MCP client sees: the upstream's answer if the call ran, else a tool error."""
    if isinstance(result.data, types.CallToolResult) and result.executed:
        return result.data
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=explain(result))], is_error=True
    )


def refusal(result: Result) -> Exception:
    """The protocol error for a resource read or prompt get that did not run."""
    from mcp.shared.exceptions import MCPError

    return MCPError(code=-32600, message=explain(result))
