"""The fast path reads both wires with a plain JSON parser and takes only the exact shapes it
knows; everything else goes the SDK's way. These are the lines an attacker would try on it: on
the client's side to get a call run that the policy did not see as it runs, on the upstream's
side to make the trail say something other than what the client is told.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mcp_types as types
from mcp_testkit import upstream_env
from test_fastpath import BROKEN, proxy_args, wire
from test_proxy import records


def _raw(client: Any, line: str) -> None:
    client.process.stdin.write(line.encode() + b"\n")


async def test_params_of_the_wrong_shape_are_refused_audited_and_never_run(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    async with wire(proxy_args(policy_file, db_url), upstream_env(upstream_log)) as client:
        listed = await client.call(1, "echo", [1, 2])
        nameless = await client.call(2, None, {})
        flagged = await client.call(3, True, {})
        client.send({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": ["echo"]})
        positional = await client.answer(4)
        fine = await client.call(5, "echo", {"ok": 1})
    for refused in (listed, nameless, flagged, positional):
        assert refused["error"]["code"] == types.INVALID_PARAMS, refused
    assert fine["result"]["structuredContent"] == {"ok": 1}
    assert [c["tool"] for c in upstream_log()] == ["echo"]
    refusals = [r for r in records(db_url) if r.matched_rule == "mcp-proxy:malformed"]
    assert [r.result for r in refusals] == ["blocked"] * 4


async def test_a_name_given_twice_is_decided_and_forwarded_as_one_name(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    """JSON with a duplicated key: whichever value the proxy reads is the one the policy judges
    and the one the upstream is asked to run, never one for each."""
    line = '{{"jsonrpc": "2.0", "id": {n}, "method": "tools/call", "params": {{"name": "{a}", "name": "{b}", "arguments": {{}}}}}}'  # noqa: E501
    async with wire(proxy_args(policy_file, db_url), upstream_env(upstream_log)) as client:
        _raw(client, line.format(n=1, a="echo", b="delete_file"))
        last_deletes = await client.answer(1)
        _raw(client, line.format(n=2, a="delete_file", b="echo"))
        last_echoes = await client.answer(2)
    assert last_deletes["result"]["isError"] is True
    assert "Blocked by Aegis policy" in last_deletes["result"]["content"][0]["text"]
    assert last_echoes["result"].get("isError") is not True
    assert [c["tool"] for c in upstream_log()] == ["echo"]
    calls = [r for r in records(db_url) if not r.action_type.startswith("mcp_pin_")]
    decided = [(r.action_type, r.result) for r in calls]
    assert decided == [("delete_file", "blocked"), ("echo", "success")]


async def test_odd_ids_and_non_json_numbers_never_run_a_call_outside_the_audit(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    """NaN is not JSON: the policy would judge NaN while the upstream got null (the SDK's
    encoder writes NaN as null), so such a call is refused. A boolean id is not a request id;
    the SDK answers it as it always has."""
    async with wire(proxy_args(policy_file, db_url), upstream_env(upstream_log)) as client:
        _raw(
            client,
            '{"jsonrpc": "2.0", "id": true, "method": "tools/call", '
            '"params": {"name": "echo", "arguments": {"id": "bool"}}}',
        )
        _raw(
            client,
            '{"jsonrpc": "2.0", "id": 2, "method": "tools/call", '
            '"params": {"name": "echo", "arguments": {"v": NaN}}}',
        )
        not_json = await client.answer(2)
        after = await client.call(3, "echo", {"after": True})
    assert not_json["error"]["code"] == types.INVALID_PARAMS, not_json
    assert after["result"]["structuredContent"] == {"after": True}
    [refused] = [r for r in records(db_url) if r.matched_rule == "mcp-proxy:malformed"]
    assert refused.result == "blocked" and "NaN" in (refused.reason or "")
    assert {"v": None} not in [c["arguments"] for c in upstream_log()]
    audited = [dict(r.params) for r in records(db_url) if r.action_type == "echo"]
    for call in upstream_log():
        assert call["arguments"] in audited, (call, audited)


async def test_an_upstream_answer_means_the_same_to_the_client_and_to_the_trail(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    tools = ("both", "nan", "error", "bad_error", "string_flag", "twice")
    args = proxy_args(policy_file, db_url, upstream=BROKEN)
    async with wire(args, upstream_env(upstream_log)) as client:
        answers = {tool: await client.call(n, tool, {}) for n, tool in enumerate(tools, 1)}
    rows = {r.action_type: r for r in records(db_url) if r.action_type in tools}
    for tool in tools:
        answer, row = answers[tool], rows[tool]
        failed = "error" in answer or answer["result"].get("isError") is True
        assert failed == (row.result == "failed"), (tool, answer, row.result, row.error)
        assert row.result in ("success", "failed"), (tool, row.result)
    for tool in ("both", "error", "bad_error", "string_flag"):
        assert rows[tool].result == "failed", (tool, answers[tool])
    assert "disk full" in (rows["error"].error or "")
    assert answers["string_flag"]["result"]["isError"] is True  # a JSON boolean, as decided
