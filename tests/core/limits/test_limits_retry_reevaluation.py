"""Between retries the policy is asked again (a tightened policy stops further attempts). For a
stateful policy that re-evaluation reads limit usage: on a database server it is read on a
worker thread, as the first decision is, and any failure to re-evaluate stops the retries, the
record saying why. On SQLite and (``-m postgres``) PostgreSQL.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from limits_helpers import pg_connect, policy, saw_a_lock_wait
from sqlalchemy import create_engine, text

from aegis import Action, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.core.decision import PolicyDecision
from aegis.core.result import Result, ResultStatus
from aegis.core.retry import RetryPolicy
from aegis.core.risk import Approval, RiskLevel
from aegis.runtime.audit import AuditStore
from aegis.runtime.execution import execute_and_verify

RATE = """
  - name: delete-rate
    match: {type: "delete*"}
    conditions: {rate_limit: {max: 5, per: 1h}}
    approval: block
"""
DELETE = Action("delete_contact", "crm", agent_id="a")
RETRY = RetryPolicy(max_attempts=3, base_delay=0.001, retry_failed_results=True)
#: Generous bounds: only a blocked event loop (or a hang) comes near them.
BOUND = 30.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
    else:
        yield request.getfixturevalue("pg_url")


class FailingFirst(BaseExecutor):
    """Fails its first call, after doing ``on_first`` to the world; succeeds afterwards."""

    def __init__(self, on_first: Callable[[], None] = lambda: None) -> None:
        self.calls = 0
        self.on_first = on_first

    async def execute(self, action: Action) -> Result:
        self.calls += 1
        if self.calls == 1:
            self.on_first()
            return Result(action, ResultStatus.FAILED, error="flaky upstream")
        return Result(action, ResultStatus.SUCCESS)


def sql(url: str, statement: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


async def test_a_retry_is_re_evaluated_and_runs(url: str) -> None:
    executor = FailingFirst()
    async with Runtime(executor=executor, policy=policy(RATE), audit=url, retry=RETRY) as rt:
        result = await rt.run_one(DELETE)
    assert result.ok and result.attempts == 2 and executor.calls == 2


async def test_a_re_evaluation_that_cannot_read_usage_stops_the_retry(url: str) -> None:
    """The usage table is gone when the retry is re-evaluated: the limit cannot be read, so the
    retry does not run, and the record says why (the read that failed)."""
    executor = FailingFirst(lambda: sql(url, "DROP TABLE aegis_limit_usage"))
    async with Runtime(executor=executor, policy=policy(RATE), audit=url, retry=RETRY) as rt:
        result = await rt.run_one(DELETE)
    assert executor.calls == 1 and result.status is ResultStatus.FAILED
    reason = result.reason or ""
    assert "retries stopped: the policy now says block" in reason, reason
    assert "policy evaluation failed" in reason and "aegis_limit_usage" in reason, reason
    async with AuditStore(url) as store:
        (record,) = store.query()
        assert record.result == "failed" and record.attempts == 1
        assert record.reason == reason


class Detonation(BaseException):
    """A BaseException of a plugin's own (neither Exception nor one Python defines)."""


class ReEvaluationRaises:
    """A real stateful policy whose third evaluation of an action (the retry's re-evaluation,
    after the snapshot decision and the final one in the write) raises ``exc``."""

    stateful = True

    def __init__(self, exc: BaseException) -> None:
        self._inner = policy(RATE)
        self._exc = exc
        self.calls = 0
        self.raised_on: list[str] = []

    def evaluate(self, action: Action, state: Any = None) -> PolicyDecision:
        self.calls += 1
        if self.calls == 3:
            self.raised_on.append(threading.current_thread().name)
            raise self._exc
        return self._inner.evaluate(action, state=state)


@pytest.mark.parametrize(
    "exc", [RuntimeError("usage unreadable"), Detonation("boom")], ids=lambda e: type(e).__name__
)
async def test_a_re_evaluation_that_raises_stops_the_retry(url: str, exc: BaseException) -> None:
    """An ``Exception`` is the runtime's to turn into a block; anything past it (Ctrl-C, a
    plugin's own BaseException) reaches the caller, the record closed first. Either way the
    retry does not run, and on PostgreSQL the policy was asked on a worker thread."""
    source = ReEvaluationRaises(exc)
    executor = FailingFirst()
    async with Runtime(executor=executor, policy=source, audit=url, retry=RETRY) as rt:
        if isinstance(exc, Exception):
            result = await rt.run_one(DELETE)
            assert result.status is ResultStatus.FAILED
            assert "retries stopped: the policy now says block" in (result.reason or "")
            assert "policy evaluation failed: RuntimeError: usage unreadable" in (
                result.reason or ""
            )
        else:
            with pytest.raises(Detonation):
                await rt.run_one(DELETE)
    assert executor.calls == 1 and source.calls == 3
    on_loop = threading.current_thread().name
    assert (source.raised_on == [on_loop]) is url.startswith("sqlite"), source.raised_on
    async with AuditStore(url) as store:
        (record,) = store.query()
        assert record.result == "failed" and record.attempts == 1
        why = f"{record.error} {record.reason}"
        assert ("usage unreadable" if isinstance(exc, Exception) else "Detonation") in why
        assert store.count(result="pending") == 0


async def test_an_error_in_re_evaluating_stops_the_retry() -> None:
    """Whatever goes wrong in asking the policy again (here the worker pool is refusing new
    work) ends the retries: the first failure stands, the reason names the error."""

    async def reevaluate(action: Action) -> PolicyDecision:
        raise RuntimeError("cannot schedule new futures after shutdown")

    executor = FailingFirst()
    decision = PolicyDecision(DELETE, RiskLevel.LOW, Approval.AUTO, "delete-rate")
    result, updates = await execute_and_verify(
        executor, DELETE, decision, retry=RETRY, timeout=None, reevaluate=reevaluate
    )
    assert executor.calls == 1 and result.status is ResultStatus.FAILED
    assert updates["attempts"] == 1
    assert result.reason is not None
    assert "retries stopped: the policy could not be asked again" in result.reason
    assert "RuntimeError: cannot schedule new futures after shutdown" in result.reason


@pytest.mark.postgres
async def test_a_blocked_re_evaluation_leaves_the_event_loop_running(pg_url: str) -> None:
    """The first attempt fails and, meanwhile, another session locks the usage table: the
    retry's re-evaluation waits for the lock on a worker thread while the loop runs on."""
    locker = pg_connect(pg_url)
    safety = threading.Timer(BOUND, locker.rollback)  # releases the lock if the loop cannot
    locked = threading.Event()

    def lock() -> None:
        locker.execute("LOCK TABLE aegis_limit_usage IN ACCESS EXCLUSIVE MODE")
        safety.start()
        locked.set()

    executor = FailingFirst(lock)
    monitor = pg_connect(pg_url)
    monitor.autocommit = True
    try:
        async with Runtime(executor=executor, policy=policy(RATE), audit=pg_url, retry=RETRY) as rt:
            task = asyncio.create_task(rt.run_one(DELETE))
            seen_waiting = await saw_a_lock_wait(task, monitor, BOUND, locked.is_set)
            locker.rollback()
            async with asyncio.timeout(BOUND):
                result = await task
    finally:
        safety.cancel()
        locker.close()
        monitor.close()
    assert seen_waiting, "the event loop did not run while the re-evaluation was blocked"
    assert result.ok and result.attempts == 2 and executor.calls == 2


ONE_A_DAY = """
  - name: deploy-once
    match: {type: "deploy*"}
    conditions: {rate_limit: {max: 1, per: 1d}}
    approval: block
"""
BUDGET = """
  - name: spend
    match: {type: "pay*"}
    conditions: {budget: {max: 100, per: 1d, param: amount}}
    approval: block
"""


@pytest.mark.parametrize(
    ("rules", "act"),
    [
        (ONE_A_DAY, Action("deploy", "prod", agent_id="a")),
        (BUDGET, Action("pay", "bank", {"amount": 100}, agent_id="a")),
    ],
    ids=["rate_limit", "budget"],
)
async def test_the_last_use_a_limit_allows_is_retried(url: str, rules: str, act: Action) -> None:
    """A retry is the same action, counted once when its record was written: the policy's
    second look does not count that use again (it used to see the limit reached by the
    action's own use, and never retry the last use a limit allows). The limit stays exact."""
    executor = FailingFirst()
    async with Runtime(executor=executor, policy=policy(rules), audit=url, retry=RETRY) as rt:
        result = await rt.run_one(act)
        assert result.ok and result.attempts == 2 and executor.calls == 2, result.reason
        again = await rt.run_one(act)
    assert again.status is ResultStatus.BLOCKED and executor.calls == 2


@pytest.mark.parametrize(("tightened_to", "retried"), [(2, True), (1, False)])
async def test_a_tightened_limit_counts_the_others_uses(
    url: str, tightened_to: int, retried: bool
) -> None:
    """While the first attempt runs, the limit is lowered. One other action used it before:
    lowered to 2, the retry fits (this action's own use is not counted twice); lowered to 1,
    the other action's use alone reaches it, and the retry is stopped."""
    lowered = policy(RATE.replace("max: 5", f"max: {tightened_to}"))
    executor = FailingFirst(lambda: rt.update_policy(lowered))
    rt = Runtime(executor=executor, policy=policy(RATE), audit=url, retry=RETRY)
    async with rt:
        other = Action("delete_contact", "crm", {"id": 2}, agent_id="a")
        executor.calls = 1  # the other action succeeds at once, the policy untouched
        assert (await rt.run_one(other)).ok
        executor.calls = 0
        result = await rt.run_one(DELETE)
    assert result.ok is retried and executor.calls == (2 if retried else 1), result.reason
    if not retried:
        assert "retries stopped: the policy now says block" in (result.reason or "")
