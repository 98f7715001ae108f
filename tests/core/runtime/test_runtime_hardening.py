"""Issue 12, runtime holes: each test fails if the hole reopens (see the issue's numbering)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import RecordingExecutor, rows

from aegis import Action, Policy, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.core.result import Result, ResultStatus
from aegis.runtime.approval.handlers import AutoApprovalHandler, CallbackApprovalHandler
from aegis.runtime.audit import AuditStore
from aegis.runtime.watcher import PolicyWatcher

AUTO = Policy.from_yaml_string('version: "1"\ndefaults: {risk_level: low, approval: auto}\n')
PLAN_POLICY = Policy.from_yaml_string(
    """
version: "1"
defaults: {risk_level: low, approval: auto}
rules:
  - {name: needs_ok, match: {type: transfer}, approval: approve}
  - {name: never, match: {type: drop*}, approval: block}
"""
)


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt()])
async def test_6_interrupt_from_an_executor_completes_the_record_first(
    store: AuditStore, exc: BaseException
) -> None:
    executor = RecordingExecutor(raise_exc=exc)
    async with Runtime(executor=executor, policy=AUTO, audit=store) as rt:
        with pytest.raises(type(exc)):
            await rt.run_one(Action("read", "crm"))
    (rec,) = rows(store)
    assert rec.result == "failed" and type(exc).__name__ in (rec.error or "")
    report = store.verify()
    assert report.ok and not getattr(report, "pending", [])


async def test_7_the_runtimes_session_wins_over_the_actions(store: AuditStore) -> None:
    async with Runtime(
        executor=RecordingExecutor(), policy=AUTO, audit=store, session_id="s-runtime"
    ) as rt:
        result = await rt.run_one(Action("read", "crm", session_id="s-spoofed"))
    assert result.action.session_id == "s-runtime"
    assert [r.session_id for r in rows(store)] == ["s-runtime"]


async def test_7_without_a_runtime_session_the_action_keeps_its_own(store: AuditStore) -> None:
    async with Runtime(executor=RecordingExecutor(), policy=AUTO, audit=store) as rt:
        result = await rt.run_one(Action("read", "crm", session_id="s-own"))
    assert result.action.session_id == "s-own"


def test_8_there_is_a_default_execution_cap() -> None:
    rt = Runtime(executor=RecordingExecutor(), policy=AUTO, audit="sqlite://")
    assert rt.execution_timeout == 300.0
    assert (
        Runtime(
            executor=RecordingExecutor(), policy=AUTO, audit="sqlite://", execution_timeout=None
        ).execution_timeout
        is None
    )


class Stubborn(BaseExecutor):
    """Ignores the first cancellations (the runtime's), then gives up when the test's event
    loop shuts down and cancels again, so the test process can end."""

    def __init__(self) -> None:
        self.started = 0
        self.ignored = 0

    async def execute(self, action: Action) -> Any:
        self.started += 1
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.ignored += 1
                if self.ignored > 1:
                    raise


async def test_8_an_executor_that_swallows_cancellation_cannot_hang_run_one(
    store: AuditStore,
) -> None:
    executor = Stubborn()
    async with Runtime(executor=executor, policy=AUTO, audit=store, execution_timeout=0.2) as rt:
        result = await asyncio.wait_for(rt.run_one(Action("read", "crm")), 30)
    assert executor.started == 1 and executor.ignored == 1  # still running when we returned
    assert result.status is ResultStatus.FAILED
    assert "timed out; it may have partly run" in (result.error or "")
    (rec,) = rows(store)
    assert rec.result == "failed"


async def test_result_accepts_the_original_timestamps() -> None:
    now = dt.datetime.now(dt.UTC)
    result = Result(Action("a", "b"), "success", started_at=now, completed_at=now)
    assert result.started_at == now == result.completed_at


async def test_executed_results_carry_their_timestamps(store: AuditStore) -> None:
    async with Runtime(executor=RecordingExecutor(), policy=AUTO, audit=store) as rt:
        result = await rt.run_one(Action("read", "crm"))
    assert result.started_at is not None and result.completed_at is not None
    assert result.started_at <= result.completed_at


async def test_execute_plan_dry_run_runs_nothing(store: AuditStore) -> None:
    executor = RecordingExecutor()
    async with Runtime(executor=executor, policy=AUTO, audit=store) as rt:
        plan = rt.plan([Action("read", "a"), Action("read", "b")])
        results = await rt.execute(plan, dry_run=True)
    assert executor.ran == [] and [r.status for r in results] == [ResultStatus.SKIPPED] * 2


@pytest.mark.parametrize(
    ("second", "handler", "why"),
    [
        (Action("transfer", "bank"), CallbackApprovalHandler(lambda a, d: False), "denied"),
        (Action("drop_table", "db"), AutoApprovalHandler(), "blocked"),
    ],
)
async def test_a_denied_or_blocked_step_stops_the_rest_of_the_plan(
    store: AuditStore, second: Action, handler: Any, why: str
) -> None:
    executor = RecordingExecutor()
    async with Runtime(
        executor=executor, policy=PLAN_POLICY, audit=store, approval_handler=handler
    ) as rt:
        results = await rt.execute([Action("read", "a"), second, Action("read", "c")])
    assert [a.target for a in executor.ran] == ["a"]
    assert [r.status.value for r in results] == ["success", why, "skipped"]
    assert results[2].reason == f"not attempted: plan step 2 {why}"


async def test_a_step_the_plan_never_reached_is_labelled_skipped_not_auto(
    store: AuditStore,
) -> None:
    """The steps after a denial never reached approval: the trail must not say "auto" (the
    policy let it run without a human) for a transfer that needed one and never ran."""
    async with Runtime(
        executor=RecordingExecutor(),
        policy=PLAN_POLICY,
        audit=store,
        approval_handler=CallbackApprovalHandler(lambda a, d: False),
    ) as rt:
        plan = [Action("transfer", "x"), Action("transfer", "y"), Action("read", "z")]
        await rt.execute(plan)
    labels = [(r.target, r.result, r.decision, r.approval) for r in rows(store)]
    assert labels == [
        ("x", "denied", "denied", "approve"),
        ("y", "skipped", "skipped", "approve"),  # was "auto"
        ("z", "skipped", "skipped", "auto"),
    ]


async def test_policy_watcher_awaits_async_callbacks(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text('version: "1"\nrules: []\n')
    seen: list[str] = []

    async def on_reload(policy: Policy) -> None:
        await asyncio.sleep(0)
        seen.append(f"reload:{len(policy.rules)}")

    async def on_error(message: str) -> None:
        await asyncio.sleep(0)
        seen.append("error")

    watcher = PolicyWatcher(path, on_reload=on_reload, on_error=on_error)
    path.write_text('version: "1"\nrules: [{name: r, match: {type: x}, approval: block}]\n')
    assert await watcher.acheck()
    path.write_text("version: [broken\n")
    assert not await watcher.acheck()
    assert seen == ["reload:1", "error"]


def test_policy_watcher_sync_check_runs_async_callbacks_too(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text('version: "1"\nrules: []\n')
    seen: list[int] = []

    async def on_reload(policy: Policy) -> None:
        seen.append(len(policy.rules))

    watcher = PolicyWatcher(path, on_reload=on_reload)
    path.write_text('version: "1"\nrules: [{name: r, match: {type: x}, approval: block}]\n')
    assert watcher.check()
    assert seen == [1]
