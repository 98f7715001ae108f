"""A stateful policy that raises past ``Exception`` (KeyboardInterrupt, SystemExit, a
BaseException of its own) during the *final* decision, the one made inside the audit write
transaction (``limit_state.begin_limited``, a DECIDE op of the writer).

Whether that decision runs on the caller's thread (the writer's inline fast path) or on the
writer thread (other tasks around), the action must not run, the caller must get the error at
once (no future left unresolved), the audit must say why, the writer must go on serving
everyone else, and nothing already recorded may be lost.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from limits_helpers import CountingExecutor, policy

from aegis import Action, Runtime
from aegis.core.decision import PolicyDecision
from aegis.core.result import ResultStatus
from aegis.runtime.audit import AuditStore

RATE = """
  - name: delete-rate
    match: {type: "delete*"}
    conditions: {rate_limit: {max: 1000, per: 1h}}
    approval: block
"""

#: Generous: only a hang (an unresolved future, a dead writer thread) comes near it.
BOUND = 60.0


class Detonation(BaseException):
    """A BaseException of a plugin's own (neither Exception nor one Python defines)."""


class FinalDecisionRaises:
    """A real stateful policy that raises ``exc`` in the final decision of an action whose
    ``bomb`` param is true: its first evaluation (the snapshot) answers normally, the second
    (inside the write transaction) raises. Records on which thread it raised."""

    stateful = True

    def __init__(self, exc: BaseException) -> None:
        self._inner = policy(RATE)
        self._exc = exc
        self._calls: Counter[int] = Counter()
        self.raised_on: list[str] = []

    def evaluate(self, action: Action, state: Any = None) -> PolicyDecision:
        n = int(action.params["n"])
        self._calls[n] += 1
        if action.params.get("bomb") and self._calls[n] == 2:
            self.raised_on.append(threading.current_thread().name)
            raise self._exc
        return self._inner.evaluate(action, state=state)


def _delete(n: int, *, bomb: bool = False) -> Action:
    return Action("delete_contact", "crm", {"n": n, "bomb": bomb}, agent_id="a")


@pytest.mark.parametrize(
    "exc", [KeyboardInterrupt(), SystemExit(3), Detonation("boom")], ids=lambda e: type(e).__name__
)
@pytest.mark.parametrize("company", [0, 8], ids=["alone-inline", "with-others-writer-thread"])
async def test_a_base_exception_in_the_final_decision_stops_the_action_and_is_audited(
    tmp_path: Path, exc: BaseException, company: int
) -> None:
    await _interrupted_final_decision(f"sqlite:///{tmp_path / 'audit.db'}", exc, company)


@pytest.mark.postgres
@pytest.mark.parametrize("company", [0, 8], ids=["alone-inline", "with-others-writer-thread"])
async def test_postgres_a_base_exception_in_the_final_decision_is_audited(
    pg_url: str, company: int
) -> None:
    await _interrupted_final_decision(pg_url, Detonation("boom"), company)


async def _interrupted_final_decision(url: str, exc: BaseException, company: int) -> None:
    source = FinalDecisionRaises(exc)
    executor = CountingExecutor()
    rt = Runtime(executor=executor, policy=source, audit=url, approval_handler="auto")
    if not company:  # write on the caller's thread whenever the writer is idle
        rt.audit.inline_when = "idle"
    async with rt:
        before = [await rt.run_one(_delete(i)) for i in range(3)]
        assert [r.status for r in before] == [ResultStatus.SUCCESS] * 3

        release = asyncio.Event()

        async def other(i: int) -> None:
            await release.wait()
            result = await rt.run_one(_delete(100 + i))
            assert result.status is ResultStatus.SUCCESS

        others = [asyncio.create_task(other(i)) for i in range(company)]
        await asyncio.sleep(0)
        release.set()
        async with asyncio.timeout(BOUND):  # a hang fails here, it does not stall the suite
            with pytest.raises(type(exc)):
                await rt.run_one(_delete(50, bomb=True))
            await asyncio.gather(*others)
            after = await rt.run_one(_delete(60))  # the writer still serves
        assert after.status is ResultStatus.SUCCESS

    writer_thread = "aegis-audit-writer"
    assert source.raised_on == [writer_thread if company else threading.current_thread().name]
    ran = sorted(int(a.params["n"]) for a in executor.ran)
    assert 50 not in ran
    assert ran == sorted([0, 1, 2, 60, *(100 + i for i in range(company))])
    async with AuditStore(url) as store:
        assert store.verify().ok
        assert store.count(result="success") == 4 + company  # nothing recorded was lost
        (stopped,) = store.query(result="blocked")
        assert stopped.action_type == "delete_contact"
        assert stopped.params["n"] == 50
        assert type(exc).__name__ in (stopped.reason or "")
        assert "interrupted" in (stopped.reason or "")
        assert store.count(result="pending") == 0
