"""Helpers shared by the MCP tests: the upstream script, the proxy started as a client would."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters, stdio_client

HERE = Path(__file__).resolve().parent
UPSTREAM = str(HERE / "upstream_server.py")
AEGIS = str(Path(sys.executable).parent / "aegis")

POLICY = """\
version: "1"
defaults: {risk_level: medium, approval: block}
rules:
  - name: deletes
    match: {type: "delete_*"}
    risk_level: critical
    approval: block
  - name: writes_need_a_human
    match: {type: "write_*"}
    risk_level: high
    approval: approve
  - name: everything_else
    match: {type: "*"}
    risk_level: low
    approval: auto
"""


def upstream_env(log: Any, name: str = "upstream") -> dict[str, str]:
    return {"UPSTREAM_LOG": str(log.path), "UPSTREAM_NAME": name}


@contextlib.asynccontextmanager
async def proxy_session(
    *args: str, env: dict[str, str] | None = None, message_handler: Any = None
) -> AsyncIterator[ClientSession]:
    """Start ``aegis mcp-proxy ARGS`` as an MCP client would, and yield the client session."""
    params = StdioServerParameters(command=AEGIS, args=["mcp-proxy", *args], env=env)
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write, message_handler=message_handler) as session,
    ):
        await session.initialize()
        yield session
