"""What one audit row says, and how it is built from the runtime's value objects.

The ``decision`` column answers "how was it decided?" in one word, derived from the result and
the approval so that every caller labels outcomes the same way:

=========  ==========================================================================
auto       the policy allowed it without a human
approved   a human (or handler) approved it
denied     a human (or handler) said no
timeout    the approval request timed out
blocked    the policy blocked it
error      a fail-closed path stopped it (a hook or check raised, nothing was decided)
dry_run    not executed because the runtime was in dry-run mode
skipped    never reached a decision: its plan stopped at an earlier step
=========  ==========================================================================

``skipped`` holds whatever the step's rule says: "auto" would claim that the policy let it run
without a human (for a step on an ``approve`` rule that never ran, it had claimed exactly that),
and "blocked" that a block rule fired, when the step was never attempted. The rule's verdict
stays in the ``approval`` and ``matched_rule`` columns. A step an approver edited is recorded as
``skipped`` with its approval, and so is labelled ``approved``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from aegis.core.action import Action
from aegis.core.approval import ApprovalDecision
from aegis.core.decision import PolicyDecision
from aegis.core.direct_json import direct_encode
from aegis.core.redact import Redactor
from aegis.core.result import Result, ResultStatus
from aegis.core.risk import Approval
from aegis.runtime.audit.chain import canonical, intent_json
from aegis.runtime.audit.schema import INTENT_COLUMNS, PARAMS_INLINE_MAX

if TYPE_CHECKING:
    from aegis.runtime.shadow import ShadowVerdict

DECISIONS: tuple[str, ...] = (
    "auto",
    "approved",
    "denied",
    "timeout",
    "blocked",
    "error",
    "dry_run",
    "skipped",
)
RESULTS: tuple[str, ...] = (
    "pending",
    "success",
    "failed",
    "blocked",
    "denied",
    "skipped",
    "interrupted",  # its process died before recording an outcome (audit_interrupted)
)

_UTC = dt.UTC


#: (second, its "YYYY-MM-DDTHH:MM:SS" text): two stamps per action share their second, and
#: formatting a datetime with its offset costs about three times this.
_second_text: tuple[int, str] = (-1, "")


def now_iso() -> str:
    """Fixed-width UTC timestamp (``datetime.isoformat(timespec="microseconds")``'s text, with
    ``+00:00``): sorts chronologically as text on every database."""
    global _second_text
    second, nanos = divmod(time.time_ns(), 1_000_000_000)
    cached = _second_text
    if cached[0] != second:
        cached = _second_text = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{nanos // 1000:06d}+00:00"


def _parse_ts(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return repr(value)


_params_encoder = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, default=_json_default, allow_nan=True
)


#: ``_params_encoder.encode``, byte-identical and cheaper (``aegis.core.direct_json``).
_encode_params = direct_encode(_params_encoder)


def params_json(params: Mapping[str, Any], redactor: Redactor, redacted: Any = None) -> str:
    """Redacted params as JSON; never raises for odd values (they are stored as their repr).
    ``redacted``: ``redactor.redact(params)`` already made (by the approval request)."""
    if not params:
        return "{}"
    if redacted is None:
        redacted = redactor.redact(params)
    return redacted_json(redacted)


def redacted_json(redacted: Any) -> str:
    """Params already redacted, as JSON (an approval request's row stores the same text)."""
    try:
        return _encode_params(redacted)
    except Exception:  # a key JSON cannot hold, an int too long for str(), a raising repr ...
        return _encode_params(_storable(redacted))


def _storable(value: Any) -> Any:
    """``value`` with everything JSON cannot encode as it is turned into descriptive text."""
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else _describe(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    if value is None or isinstance(value, str | bool | float):
        return value
    if isinstance(value, int):
        bits = value.bit_length()
        return value if bits < 10_000 else f"<integer of {bits} bits>"
    return _describe(value)


def _describe(value: Any) -> str:
    try:
        described = _json_default(value)
        return described if isinstance(described, str) else repr(described)
    except Exception:
        return f"<{type(value).__name__} that cannot be shown>"


def derive_decision(
    decision: PolicyDecision | None,
    approval: ApprovalDecision | None,
    status: ResultStatus | None = None,
    reason: str | None = None,
    *,
    dry_run: bool | None = None,
) -> str:
    """The one-word decision label (see module docstring); ``status`` None means "about to run"."""
    if dry_run or (
        dry_run is None
        and status is ResultStatus.SKIPPED
        and (reason or "").lower().startswith("dry run")
    ):
        return "dry_run"
    if approval is not None:
        if approval.approved:
            return "approved"
        return "timeout" if approval.timed_out else "denied"
    if status is ResultStatus.SKIPPED:
        return "skipped"  # not attempted: nothing decided it, whatever its rule says
    if decision is None:
        return "error"
    if decision.approval is Approval.BLOCK:
        return "blocked"
    if status in (ResultStatus.BLOCKED, ResultStatus.DENIED):
        # Allowed by the policy yet stopped before running: a fail-closed path decided.
        return "error"
    if decision.approval is Approval.APPROVE:
        return "error"  # should have had an approval; never label it "auto"
    return "auto"


def intent_values(
    action: Action,
    decision: PolicyDecision | None,
    approval: ApprovalDecision | None,
    label: str,
    parent_id: int | None,
    redactor: Redactor,
    created_at: str,
    shadow: ShadowVerdict | None = None,
) -> tuple[Any, ...]:
    """Values for ``INTENT_COLUMNS`` (same order); ``shadow``: the shadow policy's verdict."""
    text = redactor.redact_text
    return (
        created_at,
        action.session_id,
        action.agent_id,
        action.type,
        action.target,
        params_json(action.params, redactor, _redacted_by_request(action, approval, redactor)),
        text(action.description) if action.description else "",
        decision.risk_level.name if decision is not None else None,
        decision.approval.value if decision is not None else None,
        decision.matched_rule if decision is not None else None,
        label,
        approval.approver if approval is not None else None,
        text(approval.reason) if approval is not None and approval.reason else None,
        canonical(decision.unknown_conditions)
        if decision is not None and decision.unknown_conditions
        else None,
        decision.policy_fingerprint if decision is not None else None,
        parent_id,
        *_chain_values(action),
        None if shadow is None else shadow.stored(text),
        *approval_values(approval),
    )


def _redacted_by_request(
    action: Action, approval: ApprovalDecision | None, redactor: Redactor
) -> Any:
    """The redacted params an approval request written with this record made from the very
    same params with the same redactor (``approval.alongside``); None when there is none."""
    rows = getattr(approval, "alongside", None)
    return None if rows is None else rows.redacted_params(action.params, redactor)


def approval_values(approval: ApprovalDecision | None) -> tuple[str | None, str | None]:
    """The approval request's id and the seal of its answers (``approval.seal``): hashed with
    the intent, so a refused answer cannot be removed from the answers table unnoticed."""
    if approval is None:
        return (None, None)
    rows = getattr(approval, "alongside", None)  # written in this record's transaction
    return (approval.request_id, approval.answers_seal if rows is None else rows.seal)


def _shadow(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"error": f"unreadable shadow: {text[:200]}"}


def _chain_values(action: Action) -> tuple[str | None, str | None, int | None]:
    """Delegation columns; all NULL for an action outside any chain (its hash is unchanged)."""
    parent, chain, depth = action.parent_agent_id, action.chain_id, action.chain_depth
    if parent is None and chain is None and not depth:
        return (None, None, None)
    return (parent, chain, depth)


def _duration(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, 3) if math.isfinite(value) else None


def outcome_values(result: Result, redactor: Redactor, finished_at: str) -> tuple[Any, ...]:
    """Values for ``RESULT_COLUMNS`` minus the leading ``final_seq`` (assigned when written)."""
    text = redactor.redact_text
    verified = None if result.verified is None else int(bool(result.verified))
    return (
        finished_at,
        result.status.value,
        text(result.error) if result.error else None,
        text(result.reason) if result.reason else None,
        _duration(result.duration_ms),
        int(result.attempts),
        verified,
    )


@attrs.frozen
class AuditRecord:
    """One stored audit row, as the CLI and sinks see it (params already redacted)."""

    id: int
    created_at: dt.datetime
    finished_at: dt.datetime | None
    session_id: str | None
    agent_id: str | None
    action_type: str
    target: str
    params: dict[str, Any]
    description: str
    risk_level: str | None
    approval: str | None
    matched_rule: str | None
    decision: str
    approver: str | None
    approval_reason: str | None
    unknown_conditions: tuple[str, ...]
    policy_fingerprint: str | None
    parent_id: int | None
    result: str
    error: str | None
    reason: str | None
    duration_ms: float | None
    attempts: int | None
    verified: bool | None
    final_seq: int | None
    prev_hash: str
    row_hash: str
    result_hash: str | None
    parent_agent_id: str | None = None
    chain_id: str | None = None
    chain_depth: int | None = None
    #: The shadow policy's decision ({"approval", "risk_level", "matched_rule", ...}) or
    #: {"error": "shadow error: ..."}; None when no shadow policy ran (aegis.runtime.shadow).
    shadow: dict[str, Any] | None = None
    #: The approval request behind this record and the seal of its answers (``"ids:sha256"``,
    #: see aegis.runtime.approval.seal); None when no request was made.
    approval_request: str | None = None
    approval_answers: str | None = None

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any] | Any) -> AuditRecord:
        try:
            params = json.loads(row["params"]) if row["params"] else {}
        except ValueError:
            params = {"_unparsed": row["params"]}
        unknown = json.loads(row["unknown_conditions"]) if row["unknown_conditions"] else []
        verified = row["verified"]
        return cls(
            id=int(row["id"]),
            created_at=_parse_ts(row["created_at"]) or dt.datetime.min.replace(tzinfo=_UTC),
            finished_at=_parse_ts(row["finished_at"]),
            session_id=row["session_id"],
            agent_id=row["agent_id"],
            action_type=row["action_type"],
            target=row["target"],
            params=params if isinstance(params, dict) else {"_value": params},
            description=row["description"] or "",
            risk_level=row["risk_level"],
            approval=row["approval"],
            matched_rule=row["matched_rule"],
            decision=row["decision"],
            approver=row["approver"],
            approval_reason=row["approval_reason"],
            unknown_conditions=tuple(str(u) for u in unknown),
            policy_fingerprint=row["policy_fingerprint"],
            parent_id=row["parent_id"],
            result=row["result"],
            error=row["error"],
            reason=row["reason"],
            duration_ms=row["duration_ms"],
            attempts=row["attempts"],
            verified=None if verified is None else bool(verified),
            final_seq=row["final_seq"],
            prev_hash=row["prev_hash"],
            row_hash=row["row_hash"],
            result_hash=row["result_hash"],
            parent_agent_id=row.get("parent_agent_id"),
            chain_id=row.get("chain_id"),
            chain_depth=row.get("chain_depth"),
            shadow=_shadow(row.get("shadow")),
            approval_request=row.get("approval_request"),
            approval_answers=row.get("approval_answers"),
        )

    @property
    def executed(self) -> bool:
        return bool(self.attempts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: timestamps as ISO-8601 strings, everything else as stored."""
        data = attrs.asdict(self, recurse=False)
        data["created_at"] = self.created_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        data["unknown_conditions"] = list(self.unknown_conditions)
        return data


_PARAMS_AT = INTENT_COLUMNS.index("params")


def intent_payload(values: tuple[Any, ...]) -> tuple[str, tuple[Any, ...], str | None]:
    """An INTENT op's payload from ``intent_values``: (hashed JSON, row values, out-of-row
    params). Big params are written once, not twice: the hash covers the full params; the row
    keeps ``''`` and ``aegis_audit_params`` the text (see ``audit.schema``), so the outcome's
    UPDATE does not copy them again.
    """
    hashed = intent_json(values)
    params = values[_PARAMS_AT]
    if len(params) <= PARAMS_INLINE_MAX:
        return hashed, values, None
    row = (*values[:_PARAMS_AT], "", *values[_PARAMS_AT + 1 :])
    return hashed, row, params
