"""What happened to an action: executed, failed, or stopped (and by what)."""

from __future__ import annotations

import datetime as dt
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


_LABELS = {
    ResultStatus.SUCCESS: "OK",
    ResultStatus.FAILED: "FAIL",
    ResultStatus.BLOCKED: "BLOCK",
    ResultStatus.DENIED: "DENY",
    ResultStatus.SKIPPED: "SKIP",
}


def _to_status(value: object) -> ResultStatus:
    """``"success"`` is as good as ``ResultStatus.SUCCESS``; anything else is a ValueError."""
    if type(value) is ResultStatus:
        return value
    if isinstance(value, str):
        return ResultStatus(value)
    raise ValueError(f"not a result status: {value!r}")


def _to_text(value: object) -> str | None:
    """Errors and reasons are stored as text; an exception becomes ``"Type: message"``."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    return value if isinstance(value, str) else repr(value)


# Not slotted: attrs' __init__ for a frozen dict-backed class fills the instance dict
# directly instead of one object.__setattr__ call per field, and this is built twice per action.
@attrs.frozen(eq=True, hash=False, slots=False)
class Result:
    """The outcome of one action. ``reason`` says why it did not run, when it did not."""

    action: Action
    status: ResultStatus = attrs.field(converter=_to_status)
    data: Any = None
    error: str | None = attrs.field(default=None, converter=_to_text)
    decision: PolicyDecision | None = None
    approval: ApprovalDecision | None = None
    reason: str | None = attrs.field(default=None, converter=_to_text)
    duration_ms: float | None = None
    attempts: int = 0
    verified: bool | None = None
    audit_id: int | None = None
    rollback: Result | None = None
    #: When the executor was first called and when it (and verification) finished; set by
    #: the runtime for executed actions, accepted from executors as in the original API.
    started_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None

    def __str__(self) -> str:
        """``[OK] read -> crm`` (the original API's one-line form)."""
        return f"[{_LABELS[self.status]}] {self.action.type} -> {self.action.target}"

    @property
    def ok(self) -> bool:
        return self.status is ResultStatus.SUCCESS

    @property
    def executed(self) -> bool:
        """True when the executor was called at least once."""
        return self.attempts > 0

    def refusal(self) -> str:
        """One sentence for a caller outside Python (an MCP client, a coding agent) whose call
        was not run or failed: what stopped it, why, and the audit record to look up."""
        reason = self.reason or self.error or "no reason given"
        audit = f" (audit #{self.audit_id})" if self.audit_id is not None else ""
        if self.status is ResultStatus.BLOCKED:
            return f"Blocked by Aegis policy: {reason}{audit}. Do not retry this call as is."
        if self.status is ResultStatus.DENIED:
            return f"Not approved: {reason}{audit}."
        if self.status is ResultStatus.SKIPPED:
            return f"Not run: {reason}{audit}."
        return f"The call failed: {self.error or reason}{audit}."

    def explain(self) -> str:
        """One line saying what happened and why, for a model (or a person) to act on.

        Framework adapters hand this to the model in place of a tool's output when the action
        did not succeed, so the agent learns that it was blocked, denied or failed, and why,
        instead of an exception ending its run. Every adapter uses it, so the model sees the
        same words whichever framework it runs in.
        """
        what = f"{self.action.type} on {self.action.target}"
        status = self.status
        if status is ResultStatus.SUCCESS:
            return f"Succeeded: {what}."
        if status is ResultStatus.FAILED:
            text = f"Failed: {what} ran and failed: {self.error or 'no error given'}"
            return f"{text} ({self.reason})" if self.reason else text
        label = {
            ResultStatus.BLOCKED: "Blocked by policy",
            ResultStatus.DENIED: "Not approved",
            ResultStatus.SKIPPED: "Skipped",
        }[status]
        return f"{label}: {what} was not run. Reason: {self.reason or status.value}"
