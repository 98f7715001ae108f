"""What a hostile (or changed) upstream lists: a tool name that cannot be an action."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mcp_testkit import proxy_session, upstream_env
from test_fastpath import BROKEN, proxy_args


def _listing(tmp_path: Path, tools: list[dict[str, Any]]) -> Path:
    path = tmp_path / "extra_tools.json"
    path.write_text(json.dumps(tools), encoding="utf-8")
    return path


async def test_a_tool_name_that_cannot_be_an_action_does_not_break_the_listing(
    tmp_path: Path, policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    extra = [{"name": n, "inputSchema": {"type": "object"}} for n in ("ev\u200bil", " pad")]
    env = {**upstream_env(upstream_log), "BROKEN_TOOLS_FILE": str(_listing(tmp_path, extra))}
    args = proxy_args(policy_file, db_url, upstream=BROKEN)
    async with proxy_session(*args, env=env) as session:
        listed = {t.name for t in (await session.list_tools()).tools}
        refused = await session.call_tool("ev\u200bil", {})
        fine = await session.call_tool("forged_id", {})
    assert "forged_id" in listed and "error" in listed
    assert not listed & {"ev\u200bil", " pad"}
    assert refused.is_error is True
    assert fine.is_error is False
    assert [c["tool"] for c in upstream_log()] == ["forged_id"]
