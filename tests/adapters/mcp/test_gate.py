"""The proxy's gate (unlisted tools blocked, quarantined ones held) survives what the runtime
does with its policy, and does not hide the policy's own limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from aegis.adapters.mcp.proxy import Proxy

from aegis import Action, Policy, Runtime
from aegis.core.result import ResultStatus
from aegis.core.risk import Approval
from plugin_helpers import Recorder

LIMITED = """\
rules:
  - name: reads_per_minute
    match: {type: read_file}
    conditions:
      rate_limit: {max: 1, per: 60s}
    approval: block
  - name: reads
    match: {type: read_file}
    approval: auto
"""


EVERYTHING = "rules: [{name: all, match: {type: '*'}, approval: auto}]\n"


class Listing:
    """The part of an ``Upstream`` that ``Proxy.refresh`` uses: a name and its tools."""

    name = "up"
    _on_notification: Any = None

    async def list_tools(self) -> list[types.Tool]:
        schema = {"type": "object", "properties": {}}
        return [types.Tool(name="read_file", description="reads a file", input_schema=schema)]


def call(tool: str) -> Action:
    return Action(tool, "up", metadata={"mcp": "tools/call"})


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[tuple[Runtime, Recorder]]:
    ran = Recorder()
    runtime = Runtime(
        executor=ran,
        policy=Policy.from_yaml_string(LIMITED),
        audit=f"sqlite:///{tmp_path / 'audit.db'}",
    )
    proxy = Proxy(runtime, [Listing()])  # type: ignore[list-item]
    async with runtime:
        await proxy.refresh()
        yield runtime, ran


async def test_a_policy_swapped_in_later_keeps_the_proxys_gate(
    proxied: tuple[Runtime, Recorder],
) -> None:
    """``update_policy`` (a reload, the server's policy API) replaced the gate with the bare
    policy: a tool the upstream never listed was then decided by the policy alone."""
    runtime, ran = proxied
    runtime.update_policy(Policy.from_yaml_string(EVERYTHING))
    assert runtime.evaluate(call("exfiltrate")).approval is Approval.BLOCK
    result = await runtime.run_one(call("exfiltrate"))
    assert result.status is ResultStatus.BLOCKED and ran.ran == []
    assert runtime.evaluate(call("read_file")).approval is Approval.AUTO


async def test_the_policys_limits_count_behind_the_proxy(proxied: tuple[Runtime, Recorder]) -> None:
    """The gate hid that the policy is stateful: its limits were never counted, so a
    ``rate_limit`` was unknown on every call (held back, never the rule as written)."""
    runtime, ran = proxied
    first = await runtime.run_one(call("read_file"))
    second = await runtime.run_one(call("read_file"))
    assert first.ok and first.decision is not None and first.decision.unknown_conditions == ()
    assert second.status is ResultStatus.BLOCKED
    assert second.decision is not None and second.decision.matched_rule == "reads_per_minute"
    assert len(ran.ran) == 1
