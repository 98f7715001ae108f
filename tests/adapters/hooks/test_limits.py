"""Stateful policies (rate limits, budgets) count hook calls like any other action.

The attack: a policy that blocks the third shell command in an hour, and a coding agent that
runs ten. A hook that wrote its record without the limit's usage would allow them all.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from aegis.adapters.hooks import mapping
from aegis.adapters.hooks.run import pre_tool_use
from hooks_testkit import AEGIS_HOOK, payloads, records

from aegis import Policy, Runtime
from aegis.adapters.base import BaseExecutor

PAYLOADS = payloads("claude_code")
LIMITED = """\
version: "1"
defaults: {risk_level: medium, approval: block}
rules:
  - name: shell-rate
    match: {type: bash}
    conditions: {rate_limit: {max: 2, per: 1h}}
    approval: block
  - name: shell
    match: {type: bash}
    risk_level: low
    approval: auto
"""


class _NoExec(BaseExecutor):
    async def execute(self, action: Any) -> Any:
        raise AssertionError("a hook never executes")


def _call(i: int) -> dict[str, Any]:
    return {**PAYLOADS["bash_ls"], "tool_use_id": f"toolu_rate_{i}"}


async def test_a_rate_limit_counts_hook_calls(tmp_path: Path, db_url: str) -> None:
    policy = tmp_path / "limited.yaml"
    policy.write_text(LIMITED, encoding="utf-8")
    runtime = Runtime(executor=_NoExec(), policy=Policy.from_yaml(policy), audit=db_url)
    async with runtime:
        answers = [
            await pre_tool_use(runtime, mapping.claude_call(_call(i)), wait_rules=())
            for i in range(4)
        ]
    assert [a.decision for a in answers] == ["allow", "allow", "deny", "deny"]
    assert "shell-rate" in answers[2].reason
    assert [r.result for r in records(db_url)] == ["pending", "pending", "blocked", "blocked"]


def test_a_rate_limit_counts_across_hook_processes(tmp_path: Path, db_url: str) -> None:
    policy = tmp_path / "limited.yaml"
    policy.write_text(LIMITED, encoding="utf-8")
    decisions = []
    for i in range(3):
        done = subprocess.run(
            [AEGIS_HOOK, "claude-code", "--policy", str(policy), "--db", db_url, "--daemon", "off"],
            input=json.dumps(_call(i)),
            capture_output=True,
            text=True,
            timeout=120,
        )
        decisions.append(json.loads(done.stdout)["hookSpecificOutput"]["permissionDecision"])
    assert decisions == ["allow", "allow", "deny"]
