"""A stdio proxy answers a ``tools/call`` while its outcome record is being committed
(``recorded.answer_early``). What must hold: a clean shutdown never loses an outcome, whether the
client closes stdin right after its answer or the proxy is sent SIGTERM (the MCP spec's next step
when a server does not exit); a call still running at SIGTERM is closed as cancelled, not left
pending.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

from mcp_testkit import upstream_env
from test_fastpath import proxy_args, wait_for, wire
from test_proxy import records


def _outcomes(db_url: str, tool: str) -> list[str]:
    return [r.result for r in records(db_url) if r.action_type == tool]


async def test_closing_stdin_right_after_the_answers_keeps_every_outcome(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    async with wire(proxy_args(policy_file, db_url), upstream_env(upstream_log)) as client:
        answers = [await client.call(i, "echo", {"i": i}) for i in range(1, 21)]
    # wire() closed stdin after the last answer and waited for the proxy to exit
    assert [a["result"]["structuredContent"] for a in answers] == [{"i": i} for i in range(1, 21)]
    assert client.process.returncode == 0
    assert _outcomes(db_url, "echo") == ["success"] * 20


async def test_sigterm_right_after_an_answer_is_a_clean_shutdown(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    async with wire(proxy_args(policy_file, db_url), upstream_env(upstream_log)) as client:
        answer = await client.call(1, "echo", {"last": True})
        client.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(client.process.wait(), 30)
    assert answer["result"]["structuredContent"] == {"last": True}
    assert code == 0  # it shut down, it was not killed
    assert _outcomes(db_url, "echo") == ["success"]


async def test_sigterm_during_a_call_closes_its_record_as_cancelled(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    async with wire(proxy_args(policy_file, db_url), upstream_env(upstream_log)) as client:
        client.send(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "sleep", "arguments": {"seconds": 60, "tag": "x"}},
            }
        )
        await wait_for(lambda: upstream_log(), "the call to reach the upstream")
        client.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(client.process.wait(), 30)
    assert code == 0
    [row] = [r for r in records(db_url) if r.action_type == "sleep"]
    assert row.result == "failed" and "cancelled" in (row.error or ""), row


async def test_stdin_at_dev_null_ends_the_proxy(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    """``/dev/null`` is a character device the event loop cannot watch: the proxy read it
    there, logged the refusal, and then waited for input for ever instead of seeing its end."""
    import os
    import subprocess

    from mcp_testkit import AEGIS

    with open(os.devnull, "rb") as null:
        proc = await asyncio.create_subprocess_exec(
            str(AEGIS),
            "mcp-proxy",
            *proxy_args(policy_file, db_url),
            stdin=null,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **upstream_env(upstream_log)},
        )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError("the proxy did not exit once its stdin had ended") from None
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err and out == b""
