"""What the API says about decisions, results and authorisations (JSON-ready dicts), shared
by the handlers and by the durable execution rows, so a status read from the database on
another replica is the very body the running replica would have sent."""

from __future__ import annotations

from typing import Any

import msgspec

from aegis.core.decision import PolicyDecision
from aegis.core.result import Result
from aegis.runtime.engine import Authorization


def jsonable(value: Any) -> Any:
    if value is None or type(value) in (str, int, float, bool):  # most results' data
        return value
    try:
        return msgspec.to_builtins(value, str_keys=True, enc_hook=repr)
    except Exception:
        return repr(value)


def decision_dict(decision: PolicyDecision) -> dict[str, Any]:
    """The original README's shape: ``{"risk_level": "CRITICAL", "approval": "block", ...}``."""
    return {
        "action_type": decision.action.type,
        "target": decision.action.target,
        "risk_level": decision.risk_level.name,
        "approval": decision.approval.value,
        "is_allowed": decision.is_allowed,
        "matched_rule": decision.matched_rule,
        "reason": decision.reason or None,
    }


def result_dict(result: Result) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": result.status.value,
        "executed": result.executed,
        "audit_id": result.audit_id,
        "data": jsonable(result.data),
        "error": result.error,
        "reason": result.reason,
        "approver": result.approval.approver if result.approval else None,
    }
    if result.decision is not None:  # the result's reason stays; the rule's is decision_reason
        decided = decision_dict(result.decision)
        out["decision_reason"] = decided.pop("reason")
        out.update(decided)
    return out


def final_view(
    execution_id: str,
    outcome: Result | Authorization | None,
    failure: str | None,
    outcome_timeout: float,
) -> tuple[int, dict[str, Any]]:
    """The status and body of a finished execution."""
    if isinstance(outcome, Result):
        return 200, {"execution_id": execution_id, **result_dict(outcome)}
    if isinstance(outcome, Authorization):
        return 200, {
            "execution_id": execution_id,
            "status": "authorized",
            "executed": False,
            "audit_id": outcome.audit_id,
            "outcome_url": f"/api/v1/audit/{outcome.audit_id}/outcome",
            "report_within_s": outcome_timeout,
            "approver": outcome.approval.approver if outcome.approval else None,
            **decision_dict(outcome.decision),
        }
    detail = failure or "the action's job ended without a result"
    return 500, {"error": "execution failed", "detail": detail, "execution_id": execution_id}
