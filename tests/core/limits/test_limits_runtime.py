"""Stateful conditions through the runtime: exact under concurrency, across processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from limits_helpers import CountingExecutor, drive, drive_in_processes, policy

from aegis import Action, Runtime
from aegis.core.result import ResultStatus
from aegis.runtime.audit import AuditStore

RATE = """
  - name: delete-rate
    match: {type: "delete*"}
    conditions: {rate_limit: {max: 10, per: 1h, key: agent}}
    risk_level: high
    approval: block
"""

# A runaway loop: the same call again and again, each costing 3.
LOOP = """
  - name: loop
    match: {type: "provision*"}
    conditions: {repeat: {max: 5, per: 10m}}
    approval: block
  - name: per-minute
    match: {type: "provision*"}
    conditions: {rate_limit: {max: 40, per: 1h, key: session}}
    approval: block
  - name: spend
    match: {type: "provision*"}
    conditions: {budget: {param: cost, max: 100, per: 1h, key: agent}}
    approval: block
"""

DELETE = {"type": "delete_contact", "target": "crm", "agent_id": "bot"}


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit.db'}"


async def test_100_concurrent_actions_against_max_10_let_exactly_10_run(url: str) -> None:
    assert await drive(url, RATE, [DELETE], tasks=100, repeat=100) == 10
    async with AuditStore(url) as store:
        assert store.count(result="success") == 10
        assert store.count(result="blocked") == 90
        assert store.count() == 100  # every attempt has its record


async def test_two_processes_on_one_sqlite_file_share_the_count(url: str) -> None:
    counts = drive_in_processes(url, RATE, [DELETE], processes=2, tasks=50, repeat=60)
    assert sum(counts) == 10
    async with AuditStore(url) as store:
        assert store.count(result="success") == 10
        assert store.count() == 120


def _loop_actions() -> list[dict[str, object]]:
    """1,000 actions: 200 distinct calls (so repeat lets each through 5 times at most), each
    five times, all by one agent in one session, each costing 3."""
    return [
        {
            "type": "provision_vm",
            "target": "cloud",
            "params": {"cost": 3, "name": f"vm-{i % 200}"},
            "agent_id": "runaway",
            "session_id": "s1",
        }
        for i in range(1000)
    ]


async def test_runaway_loop_of_1000_actions_runs_exactly_the_budget(url: str) -> None:
    # rate_limit allows 40 and budget 33 (33 * 3 = 99 <= 100; a 34th would make 102): the
    # budget stops it first, before the sum passes 100.
    assert await drive(url, LOOP, _loop_actions(), tasks=8) == 33
    async with AuditStore(url) as store:
        assert store.count() == 1000
        assert store.count(result="success") == 33


async def test_runaway_loop_repeat_stops_the_same_call_after_5(url: str) -> None:
    same = [{**_loop_actions()[0], "params": {"cost": 0, "name": "vm"}}]
    assert await drive(url, LOOP, same, tasks=4, repeat=1000) == 5


async def test_runaway_loop_rate_limit_counts_across_calls(url: str) -> None:
    free = [{**a, "params": {"cost": 0, "name": a["params"]["name"]}} for a in _loop_actions()]
    assert await drive(url, LOOP, free, tasks=8) == 40  # type: ignore[index]


async def test_runaway_loop_in_two_processes_on_one_database(url: str) -> None:
    counts = drive_in_processes(url, LOOP, _loop_actions(), processes=2, tasks=4, repeat=1)
    assert sum(counts) == 33
    async with AuditStore(url) as store:
        assert store.count() == 2000


FLOW = """
  - name: no-exfiltration
    match: {type: "http_post*"}
    conditions:
      sequence: {steps: ["read_secret*", "http_post*|send_email*"], per: 1h, key: session}
    risk_level: critical
    approval: block
"""


async def test_flow_rule_blocks_the_exfiltration_step_only_after_the_read(url: str) -> None:
    executor = CountingExecutor()
    async with Runtime(
        executor=executor, policy=policy(FLOW), audit=url, approval_handler="auto"
    ) as rt:
        post = Action("http_post", "https://example.invalid", session_id="clean")
        assert (await rt.run_one(post)).status is ResultStatus.SUCCESS
        read = Action("read_secret", "vault/db-password", session_id="tainted")
        assert (await rt.run_one(read)).status is ResultStatus.SUCCESS
        leak = Action("http_post", "https://example.invalid", session_id="tainted")
        result = await rt.run_one(leak)
        assert result.status is ResultStatus.BLOCKED
        assert result.decision is not None and result.decision.matched_rule == "no-exfiltration"
        # the same step in the session that never read a secret still runs
        assert (await rt.run_one(post)).status is ResultStatus.SUCCESS
    assert [a.type for a in executor.ran] == ["http_post", "read_secret", "http_post"]


async def test_a_blocked_read_does_not_arm_the_flow(url: str) -> None:
    rules = (
        """
  - name: no-secrets-today
    match: {type: "read_secret*"}
    approval: block
"""
        + FLOW
    )
    async with Runtime(
        executor=CountingExecutor(), policy=policy(rules), audit=url, approval_handler="auto"
    ) as rt:
        read = Action("read_secret", "vault", session_id="s")
        assert (await rt.run_one(read)).status is ResultStatus.BLOCKED
        post = Action("http_post", "x", session_id="s")
        assert (await rt.run_one(post)).status is ResultStatus.SUCCESS


async def test_denied_and_blocked_attempts_take_no_quota(url: str) -> None:
    rules = """
  - name: big-deletes-need-a-human
    match: {type: "delete*"}
    conditions: {param_gt: {count: 100}}
    approval: approve
  - name: delete-rate
    match: {type: "delete*"}
    conditions: {rate_limit: {max: 2, per: 1h}}
    approval: block
"""
    executor = CountingExecutor()
    async with Runtime(
        executor=executor, policy=policy(rules), audit=url, approval_handler="auto"
    ) as rt:
        for _ in range(3):  # approved by the auto handler, decided by the first rule
            await rt.run_one(Action("delete_all", "crm", {"count": 500}, agent_id="a"))
        small = Action("delete_one", "crm", {"count": 1}, agent_id="a")
        statuses = [(await rt.run_one(small)).status for _ in range(3)]
    assert statuses == [ResultStatus.SUCCESS, ResultStatus.SUCCESS, ResultStatus.BLOCKED]
    assert len(executor.ran) == 5


async def test_an_approval_is_asked_once_the_snapshot_sees_the_limit(url: str) -> None:
    rules = """
  - name: burst-needs-a-human
    match: {type: "delete*"}
    conditions: {rate_limit: {max: 1, per: 1h}}
    approval: approve
"""
    async with Runtime(
        executor=CountingExecutor(), policy=policy(rules), audit=url, approval_handler="auto"
    ) as rt:
        first = await rt.run_one(Action("delete_x", "crm", agent_id="a"))
        second = await rt.run_one(Action("delete_x", "crm", agent_id="a"))
    assert first.approval is None  # under the limit: auto
    assert second.status is ResultStatus.SUCCESS
    assert second.approval is not None and second.approval.approved  # asked, then run


async def test_without_an_open_store_runtime_evaluate_fails_closed(url: str) -> None:
    rt = Runtime(executor=CountingExecutor(), policy=policy(RATE), audit=url)
    decision = rt.evaluate(Action("delete_x", "crm"))
    assert decision.approval.value == "block"
    assert decision.unknown_conditions == ("rate_limit",)


@pytest.mark.postgres
async def test_postgres_100_concurrent_actions_let_exactly_10_run(pg_url: str) -> None:
    assert await drive(pg_url, RATE, [DELETE], tasks=100, repeat=100) == 10
    async with AuditStore(pg_url) as store:
        assert store.count(result="success") == 10
        assert store.count() == 100


@pytest.mark.postgres
def test_postgres_two_processes_share_the_count(pg_url: str) -> None:
    counts = drive_in_processes(pg_url, RATE, [DELETE], processes=2, tasks=50, repeat=60)
    assert sum(counts) == 10


@pytest.mark.postgres
def test_postgres_runaway_loop_in_two_processes(pg_url: str) -> None:
    counts = drive_in_processes(pg_url, LOOP, _loop_actions(), processes=2, tasks=4, repeat=1)
    assert sum(counts) == 33


async def test_usage_past_its_window_is_pruned(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import sqlite3

    from aegis.runtime import limit_state

    monkeypatch.setattr(limit_state, "PRUNE_EVERY", 1)
    rules = """
  - name: short
    match: {type: "ping*"}
    conditions: {rate_limit: {max: 100, per: 0.3s}}
    approval: block
"""
    assert await drive(url, rules, [{"type": "ping", "target": "x"}], tasks=1, repeat=3) == 3
    await asyncio.sleep(0.5)
    assert await drive(url, rules, [{"type": "ping", "target": "x"}], tasks=1, repeat=1) == 1
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        (left,) = conn.execute("SELECT COUNT(*) FROM aegis_limit_usage").fetchone()
    assert left == 1  # the three older rows left the window and were deleted
