"""What happened to an action: executed, failed, or stopped (and by what)."""

from __future__ import annotations

import enum
from typing import Any

import attrs

from aegis.core.action import Action
from aegis.core.approval import ApprovalDecision
from aegis.core.decision import PolicyDecision


class ResultStatus(enum.StrEnum):
    SUCCESS = "success"
    FAILED = "failed"  # the executor ran and failed, raised, or verify() said no
    BLOCKED = "blocked"  # the policy (or a fail-closed path before approval) stopped it
    DENIED = "denied"  # a human/handler said no, timed out, or the handler broke
    SKIPPED = "skipped"  # not attempted: dry run, or an earlier plan step failed

    def __str__(self) -> str:
        return self.value


@attrs.frozen(eq=True, hash=False)
class Result:
    """The outcome of one action. ``reason`` says why it did not run, when it did not."""

    action: Action
    status: ResultStatus
    data: Any = None
    error: str | None = None
    decision: PolicyDecision | None = None
    approval: ApprovalDecision | None = None
    reason: str | None = None
    duration_ms: float | None = None
    attempts: int = 0
    verified: bool | None = None
    audit_id: int | None = None
    rollback: Result | None = None

    @property
    def ok(self) -> bool:
        return self.status is ResultStatus.SUCCESS

    @property
    def executed(self) -> bool:
        """True when the executor was called at least once."""
        return self.attempts > 0
