"""The original README's MCP API, against a real MCP server over stdio."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from aegis.adapters.mcp import AegisMCPToolFilter, govern_mcp_tool_call
from aegis.adapters.mcp.executor import MCPToolExecutor
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp_testkit import UPSTREAM, upstream_env

from aegis import Policy, Runtime
from aegis.core.result import ResultStatus


async def test_readme_api_governs_real_calls(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=[UPSTREAM], env=upstream_env(upstream_log, "filesystem")
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        runtime = Runtime(
            executor=MCPToolExecutor({"filesystem": session}),
            policy=Policy.from_yaml(policy_file),
            approval_handler="auto",
            audit=db_url,
        )
        async with runtime:
            result = await govern_mcp_tool_call(
                runtime=runtime,
                tool_name="read_file",
                arguments={"path": "/data.csv"},
                server_name="filesystem",
            )
            assert result.ok
            assert result.data.content[0].text == "filesystem: contents of /data.csv"

            blocked = await govern_mcp_tool_call(
                runtime=runtime,
                tool_name="delete_file",
                arguments={"path": "/data.csv"},
                server_name="filesystem",
            )
            assert blocked.status is ResultStatus.BLOCKED and not blocked.ok

            tool_filter = AegisMCPToolFilter(runtime=runtime)
            check = await tool_filter.check(server="filesystem", tool="delete_file")
            assert not check.ok and check.blocked
            check = await tool_filter.check(server="filesystem", tool="read_file")
            assert check.ok
            check = await tool_filter.check(server="filesystem", tool="write_file")
            assert not check.ok and check.needs_approval  # a check cannot hold an approval

            approved = await tool_filter.call_tool("filesystem", "write_file", {"path": "/o"})
            assert approved.ok and approved.approval is not None and approved.approval.approved

            failed = await govern_mcp_tool_call(
                runtime=runtime, tool_name="no_such_tool", server_name="filesystem"
            )
            assert failed.status is ResultStatus.FAILED  # the server ran it and said is_error
            assert "unknown tool" in (failed.error or "")

    assert [c["tool"] for c in upstream_log()] == ["read_file", "write_file", "no_such_tool"]
    assert runtime.audit.is_open is False
