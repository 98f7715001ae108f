"""The stdio fast path for ``tools/call``: the governance holds, ids never mix, cancellation and
a dying or lying upstream end in "not run" (or "failed") with the audit saying why.

Two kinds of client: the real SDK client, and a raw one writing JSON-RPC lines itself (for what
a well-behaved client would never send).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp_testkit import AEGIS, HERE, UPSTREAM, proxy_session, upstream_env
from test_proxy import _pending_request, records, text

BROKEN = str(HERE / "broken_upstream.py")


def proxy_args(policy: Path, db_url: str, *extra: str, upstream: str = UPSTREAM) -> list[str]:
    return ["--policy", str(policy), "--db", db_url, *extra, "--", sys.executable, upstream]


async def wait_for(check: Any, what: str, seconds: float = 30.0) -> Any:
    for _ in range(int(seconds * 10)):
        value = check()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_overlapping_calls_answered_out_of_order_keep_their_own_answers(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    async with proxy_session(
        *proxy_args(policy_file, db_url), env=upstream_env(upstream_log)
    ) as session:
        slow = asyncio.create_task(session.call_tool("sleep", {"seconds": 1.0, "tag": "first"}))
        await wait_for(lambda: upstream_log(), "the first call to reach the upstream")
        fast = await session.call_tool("sleep", {"seconds": 0, "tag": "second"})
        echoed = await session.call_tool("echo", {"tag": "third"})
        first = await slow
    assert text(fast) == "upstream: slept second"
    assert text(first) == "upstream: slept first"
    assert echoed.structured_content == {"tag": "third"}
    rows = {json.dumps(dict(r.params), sort_keys=True): r.result for r in records(db_url)}
    assert rows['{"seconds": 1.0, "tag": "first"}'] == "success"
    assert rows['{"seconds": 0, "tag": "second"}'] == "success"


async def test_a_call_cancelled_while_held_for_approval_never_runs(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    async with proxy_session(
        *proxy_args(policy_file, db_url, "--approval-handler", "queue"),
        env=upstream_env(upstream_log),
    ) as session:
        held = asyncio.create_task(session.call_tool("write_file", {"path": "/etc/shadow"}))
        request = await _pending_request(db_url)
        held.cancel()  # the SDK client sends notifications/cancelled for it
        with contextlib.suppress(asyncio.CancelledError):
            await held

        def stopped() -> list[Any]:
            return [r for r in records(db_url) if r.action_type == "write_file"]

        [row] = await wait_for(stopped, "the cancelled call's audit row")
        pending = subprocess.run(
            [AEGIS, "approvals", "--format", "json", "--db", db_url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        # A human approving it afterwards must not make it run.
        late = subprocess.run(
            [AEGIS, "approvals", "approve", request, "--db", db_url],
            capture_output=True,
            timeout=60,
        )
        after = await session.call_tool("echo", {"still": "working"})
    assert row.result == "denied" and "cancelled while awaiting approval" in (row.reason or "")
    assert json.loads(pending.stdout or "[]") == []  # the request was withdrawn
    assert late.returncode != 0
    assert after.structured_content == {"still": "working"}
    assert [c["tool"] for c in upstream_log()] == ["echo"]


async def test_a_running_call_cancelled_by_the_client_is_cancelled_upstream(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    async with proxy_session(
        *proxy_args(policy_file, db_url), env=upstream_env(upstream_log)
    ) as session:
        running = asyncio.create_task(session.call_tool("sleep", {"seconds": 60, "tag": "x"}))
        await wait_for(lambda: upstream_log(), "the call to reach the upstream")
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await wait_for(
            lambda: any(c["tool"] == "sleep:cancelled" for c in upstream_log()),
            "the upstream to be told to stop",
        )
        [row] = await wait_for(
            lambda: [r for r in records(db_url) if r.action_type == "sleep"], "the audit row"
        )
    assert row.result == "failed" and "cancelled" in (row.error or "")


async def test_an_upstream_dying_mid_call_fails_the_waiting_call_not_the_proxy(
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
        waiting = asyncio.create_task(session.call_tool("alpha__sleep", {"seconds": 60}))
        await wait_for(lambda: upstream_log(), "the call to reach alpha")
        await session.call_tool("alpha__die", {})
        lost = await asyncio.wait_for(waiting, 30)
        other = await session.call_tool("beta__echo", {"b": 1})
    assert lost.is_error is True and "alpha" in text(lost) and "gone" in text(lost)
    assert other.is_error is False and other.structured_content == {"b": 1}
    [row] = [r for r in records(db_url) if r.action_type == "sleep"]
    assert row.result == "failed" and "gone" in (row.error or "")


async def test_a_list_change_is_announced_once_however_many_requests_came_before(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    announced: list[Any] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            announced.append(message)

    async with proxy_session(
        *proxy_args(policy_file, db_url),
        env=upstream_env(upstream_log),
        message_handler=on_message,
    ) as session:
        for _ in range(5):
            await session.list_tools()
        await session.call_tool("add_tool", {})
        await wait_for(lambda: announced, "notifications/tools/list_changed")
        await asyncio.sleep(0.5)  # duplicates, if any, would be on their way
    assert len(announced) == 1


# -- the raw wire ------------------------------------------------------------------------------


class Wire:
    """A client that writes JSON-RPC lines itself and reads the proxy's answers by id."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.seen: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())

    async def answer(self, rid: Any, seconds: float = 30) -> dict[str, Any]:
        assert self.process.stdout is not None
        async with asyncio.timeout(seconds):
            while True:
                for message in self.seen:
                    if message.get("id") == rid and "method" not in message:
                        self.seen.remove(message)
                        return message
                line = await self.process.stdout.readline()
                assert line, "the proxy closed its stdout"
                self.seen.append(json.loads(line))

    async def call(self, rid: Any, name: Any, arguments: Any = None) -> dict[str, Any]:
        self.send(
            {
                "jsonrpc": "2.0",
                "id": rid,
                "method": "tools/call",
                "params": {"name": name, "arguments": arguments or {}},
            }
        )
        return await self.answer(rid)


@contextlib.asynccontextmanager
async def bare(args: list[str], env: dict[str, str]) -> AsyncIterator[Wire]:
    """The proxy on raw pipes, no handshake done: the test writes every line. Closing stdin
    at the end, the proxy gets 30 s to exit."""
    import os

    process = await asyncio.create_subprocess_exec(
        AEGIS,
        "mcp-proxy",
        *args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, **env},
    )
    try:
        yield Wire(process)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def wire(args: list[str], env: dict[str, str]) -> AsyncIterator[Wire]:
    """``bare``, with the handshake done."""
    async with bare(args, env) as client:
        client.send(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "raw", "version": "0"},
                },
            }
        )
        init = await client.answer(0, 60)
        assert init["result"]["protocolVersion"] == "2025-11-25", init
        client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        yield client


async def test_malformed_params_are_refused_audited_and_never_reach_the_upstream(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    async with wire(proxy_args(policy_file, db_url), upstream_env(upstream_log)) as client:
        bad_name = await client.call(1, 12345)
        client.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"x": 1}})
        no_name = await client.answer(2)
        fine = await client.call(3, "echo", {"ok": True})
    for refused in (bad_name, no_name):
        assert refused["error"]["code"] == types.INVALID_PARAMS, refused
    assert fine["result"]["structuredContent"] == {"ok": True}
    assert [c["tool"] for c in upstream_log()] == ["echo"]
    refusals = [r for r in records(db_url) if r.matched_rule == "mcp-proxy:malformed"]
    assert [r.result for r in refusals] == ["blocked", "blocked"]
    assert all("not run" in (r.reason or "") for r in refusals)


async def test_a_second_request_reusing_a_running_id_is_refused_and_not_run(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    async with wire(proxy_args(policy_file, db_url), upstream_env(upstream_log)) as client:
        client.send(
            {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "tools/call",
                "params": {"name": "sleep", "arguments": {"seconds": 1, "tag": "original"}},
            }
        )
        await wait_for(lambda: upstream_log(), "the first call to reach the upstream")
        duplicate = await client.call(7, "echo", {"sneaky": True})
        original = await client.answer(7)
    assert duplicate["error"]["code"] == types.INVALID_REQUEST
    assert original["result"]["content"][0]["text"] == "upstream: slept original"
    assert [c["tool"] for c in upstream_log()] == ["sleep"]
    [row] = [r for r in records(db_url) if r.matched_rule == "mcp-proxy:malformed"]
    assert row.result == "blocked" and "duplicate" in (row.reason or "")


async def test_a_blocked_call_on_the_wire_is_a_tool_error_and_never_reaches_the_upstream(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    async with wire(proxy_args(policy_file, db_url), upstream_env(upstream_log)) as client:
        blocked = await client.call("b-1", "delete_file", {"path": "/"})
        client.send(
            {"jsonrpc": "2.0", "id": "p", "method": "ping"}
        )  # everything else still reaches the SDK's server
        ping = await client.answer("p")
    assert blocked["result"]["isError"] is True
    assert "Blocked by Aegis policy" in blocked["result"]["content"][0]["text"]
    assert ping == {"jsonrpc": "2.0", "id": "p", "result": {}}
    assert upstream_log() == []


async def test_an_upstream_answering_garbage_fails_the_call_with_the_reason(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    args = proxy_args(policy_file, db_url, upstream=BROKEN)
    async with proxy_session(*args, env=upstream_env(upstream_log)) as session:
        bad = await session.call_tool("bad_result", {})
        not_json = await session.call_tool("not_json", {})
        forged = await session.call_tool("forged_id", {})
    assert bad.is_error is True and "invalid result" in text(bad)
    assert not_json.is_error is True and "not JSON-RPC" in text(not_json)
    assert forged.is_error is False and text(forged) == "genuine"  # the forgeries went nowhere
    rows = {r.action_type: r for r in records(db_url) if r.target == "upstream"}
    assert rows["bad_result"].result == "failed"
    assert "invalid result" in (rows["bad_result"].error or "")
    assert rows["not_json"].result == "failed"
    assert rows["forged_id"].result == "success"


async def test_a_call_that_is_not_a_usable_action_is_a_tool_error_and_audited(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    """A look-alike name (a zero-width space) or arguments nested past the core's depth limit
    cannot become an Action: the call is refused as a tool error, never reaches the upstream,
    and the attempt is in the audit trail."""
    deep: Any = "x"
    for _ in range(100):
        deep = {"d": deep}
    async with wire(proxy_args(policy_file, db_url), upstream_env(upstream_log)) as client:
        hidden = await client.call(1, "ec\u200bho", {"ok": True})
        nested = await client.call(2, "echo", {"deep": deep})
    for refused in (hidden, nested):
        assert refused["result"]["isError"] is True, refused
        assert "not run" in refused["result"]["content"][0]["text"]
    assert upstream_log() == []
    refusals = [r for r in records(db_url) if r.matched_rule == "mcp-proxy:malformed"]
    assert [r.result for r in refusals] == ["blocked", "blocked"]
