"""What the APPROVE step returns (``Sought``), built from the request as it settled.

Kept apart from the flow (``approval.flow``: ask, wait, re-check) because this is the part a
reader checks against the audit: which approver and reason reach the record, and which reason
reaches the caller as ``Result.reason`` when the action does not run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from aegis.core.action import Action
from aegis.core.approval import ApprovalDecision
from aegis.core.approvers import DEFAULT_REQUIREMENTS
from aegis.core.decision import PolicyDecision
from aegis.core.result import ResultStatus
from aegis.runtime.approval import record as states
from aegis.runtime.approval.alongside import AlongsideRows, ApprovedAlongside
from aegis.runtime.approval.channels import ApprovalChannel, HandlerChannel

if TYPE_CHECKING:
    from aegis.runtime.approval.record import Settled


class Sought(NamedTuple):
    """The APPROVE step's answer: run ``action`` under ``decision``, or stop with ``status``.
    A named tuple, not an attrs class: built once per approval, on the hot path."""

    approval: ApprovalDecision
    action: Action
    decision: PolicyDecision
    status: ResultStatus | None = None  # DENIED or BLOCKED when the action must not run
    reason: str | None = None
    original: Action | None = None  # the action as submitted, when an approver edited it
    request_id: str | None = None


def covers(final: Settled, asked: PolicyDecision, fresh: PolicyDecision) -> bool:
    """Whether the approvals given under ``asked`` also meet ``fresh``'s terms."""
    if fresh.risk_level > asked.risk_level:
        return False
    terms = fresh.requirements or DEFAULT_REQUIREMENTS
    allowed = [a for a in final.approvers if terms.allows(a, escalated=final.escalated)]
    return len(allowed) >= terms.quorum


def describe_terms(decision: PolicyDecision) -> str:
    """A decision's terms in words, for the outcome of a request it reopened."""
    terms = decision.requirements or DEFAULT_REQUIREMENTS
    return f"rule {decision.matched_rule or '(defaults)'}, risk {decision.risk_level}, " + (
        terms.describe()
    )


def approved_by(
    final: Settled,
    channels: Sequence[ApprovalChannel],
    *,
    seal: str | None = None,
) -> ApprovalDecision:
    """The approval the record names: who approved, their reasons, the seal of the answers."""
    approvers = final.approvers
    shown = [plain(a, channels) for a in approvers]
    accepted = [a for a in final.answers if a.accepted and a.verdict == "approve"]
    reason = "; ".join(a.reason for a in accepted if a.reason) or None
    named: dict[str, Any] = {
        "approver": ", ".join(shown) or None,
        "reason": reason,
        "handler": ",".join(final.channels) or None,
        "request_id": final.id,
        "approvers": approvers,
        "edited": bool(final.edits),
    }
    return ApprovalDecision(True, answers_seal=seal, **named)


def approved_ahead(rows: AlongsideRows) -> ApprovalDecision:
    """``approved_by`` for the one answer of a request settled before it was stored (the
    built-in ``auto`` handler's, on a handler channel: the approver is the name it gave)."""
    attempt = rows.attempt
    return ApprovedAlongside(
        True,
        alongside=rows,
        approver=attempt.identity.partition(":")[2] or None,
        reason=attempt.reason or None,
        handler=",".join(rows.channels) or None,
        request_id=rows.id,
        approvers=rows.approvers,
    )


def refusal(
    final: Settled,
    action: Action,
    decision: PolicyDecision,
    window: float,
    channels: Sequence[ApprovalChannel],
    *,
    seal: str | None = None,
) -> Sought:
    """Denied, expired, cancelled or abandoned: the action does not run; say why."""
    denial = next((a for a in final.answers if a.accepted and a.verdict == "deny"), None)
    if final.state == states.EXPIRED:
        approval = ApprovalDecision(
            False,
            reason=f"no answer within {window:g} s",
            handler=",".join(final.channels) or None,
            timed_out=True,
            request_id=final.id,
            answers_seal=seal,
        )
        return Sought(
            approval,
            action,
            decision,
            ResultStatus.DENIED,
            f"approval timed out: no answer within {window:g} s",
            None,
            final.id,
        )
    if denial is not None:
        who = denial.responder
        approval = ApprovalDecision(
            False,
            approver=plain(who, channels),
            reason=denial.reason or "denied",
            handler=denial.channel,
            request_id=final.id,
            answers_seal=seal,
        )
        because = f": {denial.reason}" if denial.reason else ""
        return Sought(
            approval, action, decision, ResultStatus.DENIED, f"denied{because}", None, final.id
        )
    reason = f"denied: {final.outcome or final.state}"
    return stop(final, action, decision, ResultStatus.DENIED, reason, seal=seal)


def stop(
    final: Settled,
    action: Action,
    decision: PolicyDecision,
    status: ResultStatus,
    reason: str,
    *,
    seal: str | None = None,
) -> Sought:
    approval = ApprovalDecision(
        False,
        reason=reason,
        handler=",".join(final.channels) or None,
        request_id=final.id,
        answers_seal=seal,
    )
    return Sought(approval, action, decision, status, reason, None, final.id)


def plain(identity: str, channels: Sequence[ApprovalChannel]) -> str:
    """``callback:alice`` -> ``alice`` for one-shot handlers: the audit's approver column keeps
    the name the handler gave, as it always did; channel answers keep ``channel:id``."""
    channel, _, who = identity.partition(":")
    handlers = {c.label for c in channels if isinstance(c, HandlerChannel)}
    return who if channel in handlers else identity
