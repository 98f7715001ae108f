"""Lines a hostile client writes to get a call past the proxy: framings the fast path does not
take (batches, notifications, ids that are not request ids, odd method names) and calls made
before the handshake. Whoever handles such a line, nothing may reach the upstream that the
policy did not allow, and nothing may reach it without an audit record that has an outcome.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp_testkit import upstream_env
from test_fastpath import Wire, bare, proxy_args, wire
from test_proxy import records


def _call(rid: Any, name: str, arguments: dict[str, Any], **extra: Any) -> dict[str, Any]:
    message = {"jsonrpc": "2.0", "method": "tools/call"}
    if rid is not ...:
        message["id"] = rid
    return {**message, "params": {"name": name, "arguments": arguments}, **extra}


def _raw(client: Wire, line: str) -> None:
    assert client.process.stdin is not None
    client.process.stdin.write(line.encode() + b"\n")


def _audited_every_upstream_call(db_url: str, calls: list[dict[str, Any]]) -> None:
    rows = [r for r in records(db_url) if not r.action_type.startswith("mcp_pin_")]
    done = [(r.action_type, dict(r.params)) for r in rows if r.result in ("success", "failed")]
    for call in calls:
        assert (call["tool"], call["arguments"]) in done, (call, rows)
    assert all(r.result != "pending" for r in rows), rows


async def test_framings_the_fast_path_leaves_to_the_sdk_never_run_a_blocked_call(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    bad = {"path": "/"}
    async with wire(proxy_args(policy_file, db_url), upstream_env(upstream_log)) as client:
        batch = [_call(1, "delete_file", bad), _call(2, "echo", {"batched": True})]
        _raw(client, json.dumps(batch))
        client.send(_call(..., "delete_file", bad))  # a notification
        client.send(_call(None, "delete_file", bad))
        client.send(_call(1.5, "delete_file", bad))
        client.send(_call(3, "delete_file", bad, method="Tools/Call"))
        client.send(_call(4, "delete_file", bad, method=" tools/call"))
        client.send(_call(5, "delete_file", bad, jsonrpc="2.0 "))
        _raw(
            client,
            json.dumps(_call(6, "delete_file", bad)).replace("tools/call", "tools\\u002fcall"),
        )
        escaped = await client.answer(6)
        for rid in (3, 4):
            wrong = await client.answer(rid)
            assert "error" in wrong, wrong
        after = await client.call(9, "echo", {"after": True})
    assert escaped["result"]["isError"] is True
    assert "Blocked by Aegis policy" in escaped["result"]["content"][0]["text"]
    assert after["result"]["structuredContent"] == {"after": True}
    calls = upstream_log()
    assert "delete_file" not in [c["tool"] for c in calls], calls
    _audited_every_upstream_call(db_url, calls)


async def test_calls_before_and_during_the_handshake_are_governed(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    bad = {"path": "/"}
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        },
    }
    async with bare(proxy_args(policy_file, db_url), upstream_env(upstream_log)) as client:
        client.send(_call(1, "delete_file", bad))
        client.send(_call(2, "echo", {"before": "initialize"}))
        first = [await client.answer(1, 60), await client.answer(2)]
        client.send(init)
        await client.answer(0)
        client.send(_call(3, "delete_file", bad))  # before notifications/initialized
        client.send(_call(4, "echo", {"before": "initialized"}))
        second = [await client.answer(3), await client.answer(4)]
        client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        client.send(_call(5, "echo", {"after": True}))
        await client.answer(5)
    for answer in (first[0], second[0]):
        assert "error" in answer or answer["result"]["isError"] is True, answer
    calls = upstream_log()
    assert "delete_file" not in [c["tool"] for c in calls], calls
    _audited_every_upstream_call(db_url, calls)


async def test_a_call_the_sdk_serves_is_closed_in_the_audit_when_the_client_goes(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    """The 2026-07-28 protocol has no handshake, so its calls are the SDK's, not the fast
    path's: stdin closing while one runs upstream must still leave its record an outcome."""
    meta = {
        types.PROTOCOL_VERSION_META_KEY: "2026-07-28",
        types.CLIENT_CAPABILITIES_META_KEY: {},
    }
    call = _call(1, "sleep", {"seconds": 60, "tag": "sdk"})
    call["params"]["_meta"] = meta
    async with bare(proxy_args(policy_file, db_url), upstream_env(upstream_log)) as client:
        client.send(call)
        for _ in range(600):
            if upstream_log():
                break
            await asyncio.sleep(0.1)
        assert upstream_log(), "the call never reached the upstream"
    assert client.process.returncode is not None
    [row] = [r for r in records(db_url) if r.action_type == "sleep"]
    assert row.result in ("failed", "success"), row


async def test_a_cancel_racing_the_answer_never_loses_an_outcome(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    """The client cancels each call as soon as it is sent: before it starts, while it runs, or
    after its answer went out while its outcome is being committed. Whichever it hits, a call
    that reached the upstream has its outcome in the trail."""
    async with wire(proxy_args(policy_file, db_url), upstream_env(upstream_log)) as client:
        for i in range(1, 41):
            client.send(_call(i, "echo", {"i": i}))
            cancel = {"requestId": i, "reason": "changed my mind"}
            client.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": cancel})
        after = await client.call(100, "echo", {"after": True})
    assert after["result"]["structuredContent"] == {"after": True}
    _audited_every_upstream_call(db_url, upstream_log())
