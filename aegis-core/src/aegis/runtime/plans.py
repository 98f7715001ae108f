"""Running a plan: steps in order, skip after a failure, compensate what already happened.

Kept apart from the per-action pipeline (pipeline.py): every step and every compensating action
goes through that pipeline unchanged, so nothing here can let an action past the policy. What
this module adds is order: which steps still run after one fails, and which get undone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs

from aegis.adapters.base import BaseExecutor
from aegis.core.action import Action
from aegis.core.decision import PolicyDecision
from aegis.core.plan import PlanStep
from aegis.core.result import Result, ResultStatus
from aegis.runtime.execution import join_reasons

#: Outcomes of a step after which the rest of the plan is not attempted.
_STOPS = frozenset({ResultStatus.FAILED, ResultStatus.DENIED, ResultStatus.BLOCKED})

#: The pipeline for one action: ``run(action, parent_id=..., note=...)``.
RunAction = Callable[..., Awaitable[Result]]
#: Record a step as not attempted: ``skip(action, reason)``.
SkipAction = Callable[[Action, str], Awaitable[Result]]


async def run_plan(
    steps: Sequence[PlanStep | Action],
    *,
    run: RunAction,
    skip: SkipAction,
    evaluate: Callable[[Action], PolicyDecision],
    executor: BaseExecutor,
    stop_on_failure: bool,
    rollback: bool,
) -> list[Result]:
    """Results of ``steps``, one per step, in order (see ``Runtime.execute``)."""
    results: list[Result] = []
    failed_at: int | None = None
    for index, step in enumerate(steps):
        action = step.action if isinstance(step, PlanStep) else step
        if failed_at is not None and stop_on_failure:
            why = results[failed_at].status.value
            results.append(await skip(action, f"not attempted: plan step {failed_at + 1} {why}"))
            continue
        note = _plan_drift(step.decision, evaluate(action)) if isinstance(step, PlanStep) else None
        result = await run(action, note=note)
        results.append(result)
        if result.status in _STOPS and failed_at is None:
            failed_at = index
            if rollback and result.status is ResultStatus.FAILED:
                await _roll_back(results, run, executor)
    return results


async def _roll_back(results: list[Result], run: RunAction, executor: BaseExecutor) -> None:
    """Ask for compensating actions, newest step first; each runs through the full pipeline."""
    for position in range(len(results) - 1, -1, -1):
        original = results[position]
        if not original.executed:
            continue
        problem: str | None = None
        compensation: Any = None
        try:
            compensation = await executor.rollback(original.action, original)
        except Exception as exc:
            problem = f"rollback() raised {type(exc).__name__}: {exc}"
        else:
            if compensation is not None and not isinstance(compensation, Action):
                problem = "rollback() returned something other than an Action"
        if problem is not None:
            results[position] = attrs.evolve(
                original, reason=join_reasons(original.reason, problem)
            )
            continue
        if compensation is None:
            continue
        undo = await run(
            compensation,
            parent_id=original.audit_id,
            note=f"rollback of audit record {original.audit_id}",
        )
        results[position] = attrs.evolve(original, rollback=undo)


def _plan_drift(planned: PolicyDecision, current: PolicyDecision) -> str | None:
    """A note for the audit when the plan's decision is not the one in force now."""
    if (planned.approval, planned.risk_level, planned.matched_rule) == (
        current.approval,
        current.risk_level,
        current.matched_rule,
    ):
        return None
    return (
        f"plan said {planned.approval.value}/{planned.risk_level} "
        f"({planned.matched_rule or 'defaults'}); the current policy decided"
    )
