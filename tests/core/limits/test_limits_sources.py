"""Stateful policies behind a PolicyHierarchy or a PolicyWatcher, and a source that breaks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from limits_helpers import CountingExecutor, policy

from aegis import Action, PolicyHierarchy, Runtime
from aegis.core.decision import PolicyDecision
from aegis.core.result import ResultStatus
from aegis.runtime.audit import AuditStore
from aegis.runtime.watcher import PolicyWatcher

RATE = """
  - name: delete-rate
    match: {type: "delete*"}
    conditions: {rate_limit: {max: 3, per: 1h}}
    approval: block
"""


async def _burst(url: str, source: Any, n: int = 30) -> int:
    executor = CountingExecutor()
    async with Runtime(executor=executor, policy=source, audit=url, approval_handler="auto") as rt:
        await asyncio.gather(
            *(rt.run_one(Action("delete_x", "crm", agent_id="a")) for _ in range(n))
        )
    return len(executor.ran)


async def test_a_hierarchy_level_with_a_limit_counts_exactly(tmp_path: Path) -> None:
    org = policy("  - name: reads\n    match: {type: 'read*'}\n    approval: auto\n")
    source = PolicyHierarchy([("org", org), ("team", policy(RATE))])
    assert source.stateful
    assert await _burst(f"sqlite:///{tmp_path / 'a.db'}", source) == 3


async def test_a_watched_policy_file_with_a_limit_counts_exactly(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: '1'\ndefaults: {risk_level: low, approval: auto}\nrules:\n" + RATE)
    assert await _burst(f"sqlite:///{tmp_path / 'a.db'}", PolicyWatcher(path)) == 3


class Broken:
    """Claims to be stateful but cannot take a state: every decision must block."""

    stateful = True

    def evaluate(self, action: Action) -> PolicyDecision:
        raise AssertionError("never called without a state here")


async def test_a_stateful_source_that_cannot_take_a_state_blocks_with_a_record(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    executor = CountingExecutor()
    async with Runtime(executor=executor, policy=Broken(), audit=url) as rt:
        result = await rt.run_one(Action("read_x", "crm"))
    assert result.status is ResultStatus.BLOCKED
    assert "policy evaluation failed" in (result.reason or "")
    assert executor.ran == []
    async with AuditStore(url) as store:
        assert store.count(result="blocked") == 1
