"""A plan: what the policy would do with a batch of actions, for a human or a log to read.

A plan is advice, not permission. ``Runtime.execute(plan)`` evaluates every action again
against the policy in force at execution time, so a stale plan (the policy tightened since) or a
forged one (decisions edited by hand) cannot run anything the current policy would stop.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from aegis.core.action import Action
from aegis.core.decision import PolicyDecision
from aegis.core.risk import Approval


@attrs.frozen
class PlanStep:
    index: int
    action: Action
    decision: PolicyDecision


@attrs.frozen
class ExecutionPlan:
    steps: tuple[PlanStep, ...]
    policy_fingerprint: str | None = None

    def __iter__(self) -> Iterator[PlanStep]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def actions(self) -> list[Action]:
        return [step.action for step in self.steps]

    def _with(self, approval: Approval) -> list[PlanStep]:
        return [s for s in self.steps if s.decision.approval is approval]

    @property
    def auto_approved(self) -> list[PlanStep]:
        return self._with(Approval.AUTO)

    @property
    def needs_approval(self) -> list[PlanStep]:
        return self._with(Approval.APPROVE)

    @property
    def blocked(self) -> list[PlanStep]:
        return self._with(Approval.BLOCK)

    def summary(self) -> str:
        """A plain-text table of the plan, one line per action, then the totals."""
        headers = ("#", "action", "target", "risk", "approval", "rule")
        rows = [
            (
                str(s.index + 1),
                s.action.type,
                s.action.target,
                str(s.decision.risk_level),
                str(s.decision.approval),
                (s.decision.matched_rule or "(defaults)")
                + (
                    " [unknown: " + ", ".join(s.decision.unknown_conditions) + "]"
                    if s.decision.unknown_conditions
                    else ""
                ),
            )
            for s in self.steps
        ]
        widths = [
            max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
            for i, h in enumerate(headers)
        ]
        lines = [f"Execution plan ({len(self.steps)} actions)"]
        lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
        lines.extend(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
        )
        lines.append(
            f"{len(self.auto_approved)} auto, {len(self.needs_approval)} need approval, "
            f"{len(self.blocked)} blocked"
        )
        return "\n".join(lines)
