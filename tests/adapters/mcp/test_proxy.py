"""``aegis mcp-proxy`` over stdio in front of a real MCP server, driven by the real client."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp_testkit import UPSTREAM, proxy_session, upstream_env

from aegis.runtime.audit import AuditStore


def text(result: Any) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


def records(db_url: str) -> list[Any]:
    store = AuditStore(db_url)
    try:
        return store.query(limit=None)
    finally:
        store.close_sync()


async def test_allowed_call_reaches_the_upstream_and_is_audited(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    async with proxy_session(
        "--policy",
        str(policy_file),
        "--db",
        db_url,
        "--",
        sys.executable,
        UPSTREAM,
        env=upstream_env(upstream_log),
    ) as session:
        result = await session.call_tool("echo", {"a": 1})
    assert result.is_error is False
    assert result.structured_content == {"a": 1}
    assert upstream_log() == [{"server": "upstream", "tool": "echo", "arguments": {"a": 1}}]
    calls = [r for r in records(db_url) if r.action_type == "echo"]
    assert len(calls) == 1
    assert (calls[0].target, calls[0].result, calls[0].params) == ("upstream", "success", {"a": 1})


async def test_blocked_call_is_a_tool_error_and_never_reaches_the_upstream(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    async with proxy_session(
        "--policy",
        str(policy_file),
        "--db",
        db_url,
        "--",
        sys.executable,
        UPSTREAM,
        env=upstream_env(upstream_log),
    ) as session:
        listed = {t.name for t in (await session.list_tools()).tools}
        # Hidden from the list, and refused when called by name anyway.
        result = await session.call_tool("delete_file", {"path": "/etc/passwd"})
    assert "delete_file" not in listed
    assert {"echo", "read_file", "slow"} <= listed
    assert result.is_error is True
    assert "Blocked by Aegis policy" in text(result) and "deletes" in text(result)
    assert upstream_log() == []
    [row] = [r for r in records(db_url) if r.action_type == "delete_file"]
    assert row.result == "blocked" and row.matched_rule == "deletes"


async def test_unknown_tool_is_refused_and_audited(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    async with proxy_session(
        "--policy",
        str(policy_file),
        "--db",
        db_url,
        "--",
        sys.executable,
        UPSTREAM,
        env=upstream_env(upstream_log),
    ) as session:
        result = await session.call_tool("read_secrets", {})
    assert result.is_error is True
    assert "not a tool the proxy listed" in text(result)
    assert upstream_log() == []
    assert [r.result for r in records(db_url) if r.action_type == "read_secrets"] == ["blocked"]


async def test_approve_rule_without_a_channel_is_denied_with_the_reason(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    async with proxy_session(
        "--policy",
        str(policy_file),
        "--db",
        db_url,
        "--",
        sys.executable,
        UPSTREAM,
        env=upstream_env(upstream_log),
    ) as session:
        listed = {t.name for t in (await session.list_tools()).tools}
        result = await session.call_tool("write_file", {"path": "/x"})
    assert result.is_error is True
    assert "Not approved" in text(result) and "no approval channel" in text(result)
    assert upstream_log() == []
    assert "write_file" in listed  # approve-only tools are listed: a human may allow them
    [row] = [r for r in records(db_url) if r.action_type == "write_file"]
    assert (row.decision, row.result) == ("denied", "denied")


async def test_approve_rule_runs_once_the_handler_approves(
    tmp_path: Path, db_url: str, upstream_log: Any
) -> None:
    policy = tmp_path / "approve.yaml"
    policy.write_text(
        'version: "1"\ndefaults: {risk_level: medium, approval: block}\nrules:\n'
        '  - name: human\n    match: {type: "read_*"}\n    risk_level: high\n'
        "    approval: approve\n",
        encoding="utf-8",
    )
    async with proxy_session(
        "--policy",
        str(policy),
        "--db",
        db_url,
        "--approval-handler",
        "auto",
        "--",
        sys.executable,
        UPSTREAM,
        env=upstream_env(upstream_log),
    ) as session:
        result = await session.call_tool("read_file", {"path": "/data.csv"})
    assert result.is_error is False, text(result)
    assert "contents of /data.csv" in text(result)
    [row] = [r for r in records(db_url) if r.action_type == "read_file"]
    assert (row.decision, row.result) == ("approved", "success")


async def test_progress_flows_back_to_the_client(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, total, message))

    async with proxy_session(
        "--policy",
        str(policy_file),
        "--db",
        db_url,
        "--",
        sys.executable,
        UPSTREAM,
        env=upstream_env(upstream_log),
    ) as session:
        result = await session.call_tool("slow", {}, progress_callback=progress)
    assert text(result) == "slow done"
    assert [s[0] for s in seen] == [1.0, 2.0, 3.0]


async def test_several_upstreams_are_prefixed_and_a_dead_one_fails_alone(
    tmp_path: Path, policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    servers = {
        "mcpServers": {
            name: {
                "command": sys.executable,
                "args": [UPSTREAM],
                "env": upstream_env(upstream_log, name),
            }
            for name in ("alpha", "beta")
        }
    }
    config = tmp_path / "servers.json"
    config.write_text(json.dumps(servers), encoding="utf-8")
    async with proxy_session(
        "--policy", str(policy_file), "--db", db_url, "--config", str(config)
    ) as session:
        listed = {t.name for t in (await session.list_tools()).tools}
        died = await session.call_tool("alpha__die", {})
        after = await session.call_tool("alpha__read_file", {"path": "/a"})
        other = await session.call_tool("beta__read_file", {"path": "/b"})
    assert {"alpha__read_file", "beta__read_file", "alpha__echo"} <= listed
    assert not any(name.endswith("delete_file") for name in listed)
    assert died.is_error is True and after.is_error is True
    assert "alpha" in text(after)
    assert other.is_error is False and "beta: contents of /b" in text(other)
    rows = {(r.action_type, r.target): r.result for r in records(db_url)}
    assert rows[("read_file", "beta")] == "success"
    assert rows[("read_file", "alpha")] == "failed"


async def test_bad_config_is_one_line_naming_file_line_and_key(
    tmp_path: Path, policy_file: Path
) -> None:
    import subprocess

    config = tmp_path / "servers.json"
    config.write_text('{\n  "mcpServers": {\n    "fs": {"comand": "npx"}\n  }\n}\n')
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "aegis"),
            "mcp-proxy",
            "--policy",
            str(policy_file),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"aegis: error: {config}:3: mcpServers.fs.comand: unknown key for a stdio server "
        "(command, args, env, cwd, type)"
    )


def test_tool_error_text_is_a_call_tool_result() -> None:
    assert types.CallToolResult  # the SDK's 2.x name, used by the proxy


async def _pending_request(db_url: str) -> str:
    """The id of the one pending approval request, as another process sees it."""
    import asyncio
    import subprocess

    aegis = str(Path(sys.executable).parent / "aegis")
    for _ in range(60):
        done = subprocess.run(
            [aegis, "approvals", "--format", "json", "--db", db_url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode == 0 and done.stdout.strip():
            pending = json.loads(done.stdout)
            if pending:
                return str(pending[0]["id"])
        await asyncio.sleep(0.2)
    raise AssertionError("no approval request appeared")


async def test_approve_rule_answered_from_another_process_runs(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    import asyncio
    import subprocess

    aegis = str(Path(sys.executable).parent / "aegis")
    async with proxy_session(
        "--policy",
        str(policy_file),
        "--db",
        db_url,
        "--approval-handler",
        "queue",
        "--",
        sys.executable,
        UPSTREAM,
        env=upstream_env(upstream_log),
    ) as session:
        call = asyncio.create_task(session.call_tool("write_file", {"path": "/report.txt"}))
        request = await _pending_request(db_url)
        assert upstream_log() == []  # held until a human answers
        done = subprocess.run(
            [aegis, "approvals", "approve", request, "--reason", "looks fine", "--db", db_url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        result = await asyncio.wait_for(call, 60)
    assert result.is_error is False, text(result)
    assert "wrote /report.txt" in text(result)
    assert [c["tool"] for c in upstream_log()] == ["write_file"]
    [row] = [r for r in records(db_url) if r.action_type == "write_file"]
    assert (row.decision, row.result) == ("approved", "success")


async def test_approve_rule_denied_from_another_process_is_a_tool_error(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    import asyncio
    import subprocess

    aegis = str(Path(sys.executable).parent / "aegis")
    async with proxy_session(
        "--policy",
        str(policy_file),
        "--db",
        db_url,
        "--approval-handler",
        "queue",
        "--",
        sys.executable,
        UPSTREAM,
        env=upstream_env(upstream_log),
    ) as session:
        call = asyncio.create_task(session.call_tool("write_file", {"path": "/etc/hosts"}))
        request = await _pending_request(db_url)
        subprocess.run(
            [aegis, "approvals", "deny", request, "--reason", "not that file", "--db", db_url],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        result = await asyncio.wait_for(call, 60)
    assert result.is_error is True and "not that file" in text(result)
    assert upstream_log() == []


async def test_resources_and_prompts_pass_through_and_are_governed(
    tmp_path: Path, db_url: str, upstream_log: Any
) -> None:
    from mcp.shared.exceptions import MCPError

    policy = tmp_path / "resources.yaml"
    policy.write_text(
        'version: "1"\ndefaults: {risk_level: medium, approval: block}\nrules:\n'
        '  - name: no_secrets\n    match: {type: "resources/read"}\n'
        "    conditions: {param_matches: {uri: '.*secrets.*'}}\n"
        "    risk_level: critical\n    approval: block\n"
        '  - name: rest\n    match: {type: "*"}\n    risk_level: low\n    approval: auto\n',
        encoding="utf-8",
    )
    async with proxy_session(
        "--policy",
        str(policy),
        "--db",
        db_url,
        "--",
        sys.executable,
        UPSTREAM,
        env=upstream_env(upstream_log),
    ) as session:
        listed = {str(r.uri) for r in (await session.list_resources()).resources}
        notes = await session.read_resource("file:///notes.txt")
        try:
            await session.read_resource("file:///secrets/key.pem")
            refused = ""
        except MCPError as exc:
            refused = str(exc)
        prompts = {p.name for p in (await session.list_prompts()).prompts}
        prompt = await session.get_prompt("summarise", {"topic": "q3"})
    assert listed == {"file:///notes.txt", "file:///secrets/key.pem"}
    assert notes.contents[0].text == "upstream: text of file:///notes.txt"
    assert "Blocked by Aegis policy" in refused and "no_secrets" in refused
    assert prompts == {"summarise"} and "q3" in prompt.messages[0].content.text
    assert [c["tool"] for c in upstream_log()] == ["resources/read", "prompts/get"]
    rows = [(r.action_type, r.result) for r in records(db_url) if "/" in r.action_type]
    assert rows == [
        ("resources/read", "success"),
        ("resources/read", "blocked"),
        ("prompts/get", "success"),
    ]
