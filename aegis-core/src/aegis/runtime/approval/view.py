"""An approval request as plain JSON-ready data: what ``aegis approvals -f json``, the REST
API and the dashboard show, so a person sees the same fields wherever they answer."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aegis.runtime.approval.record import ApprovalRequest


def iso(ts: float) -> str:
    """A stored epoch time as ISO-8601 UTC to the second."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def request_dict(req: ApprovalRequest, now: float | None = None) -> dict[str, Any]:
    """Every field of ``req`` (params as stored, i.e. redacted) with its answers;
    ``expires_in_s`` is counted from ``now`` (default: the clock) while it is pending."""
    at = time.time() if now is None else now
    return {
        "id": req.id,
        "state": req.state,
        "action_type": req.action_type,
        "target": req.target,
        "params": req.params,
        "description": req.description,
        "agent_id": req.agent_id,
        "session_id": req.session_id,
        "risk_level": req.risk_level,
        "matched_rule": req.matched_rule,
        "decision_reason": req.decision_reason,
        "digest": req.digest,
        "created_at": iso(req.created_at),
        "expires_at": iso(req.expires_at),
        "expires_in_s": round(req.expires_at - at, 1) if req.state == "pending" else None,
        "settled_at": iso(req.settled_at) if req.settled_at else None,
        "outcome": req.outcome,
        "who_may_answer": req.requirements.describe(),
        "quorum": req.requirements.quorum,
        "escalated": req.escalated,
        "channels": list(req.channels),
        "owner": f"pid {req.owner_pid} on {req.owner_host}",
        "audit_id": req.audit_id,
        "edits": req.edits,
        "answers": [
            {
                "at": iso(a.at),
                "responder": a.responder,
                "verdict": a.verdict,
                "reason": a.reason,
                "edits": a.edits,
                "accepted": a.accepted,
                "note": a.note,
            }
            for a in req.answers
        ],
    }
