"""What an approval request and its answers look like once read from the store."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from aegis.core.approvers import ApprovalRequirements

PENDING, APPROVED, DENIED, EXPIRED = "pending", "approved", "denied", "expired"
CANCELLED, ABANDONED, SUPERSEDED = "cancelled", "abandoned", "superseded"
STATES = (PENDING, APPROVED, DENIED, EXPIRED, CANCELLED, ABANDONED, SUPERSEDED)


@attrs.frozen
class AnswerRecord:
    #: The answer row's id. None for an answer kept in its request row (an ``auto`` approval
    #: written with its action's record: ``ApprovalRequest.answers`` holds it, read from the
    #: row's ``answer``), for one not stored yet, and for an answer naming no request that was
    #: never read back.
    id: int | None
    at: float
    channel: str
    responder: str
    verdict: str
    reason: str | None
    edits: dict[str, Any] | None
    accepted: bool
    note: str | None
    #: The row exactly as stored (every column of ``aegis_approval_answer``, in table order):
    #: what the action's audit record seals (``approval.seal``), so it is never re-encoded.
    #: Empty for an answer that is no answer row (``id`` None).
    stored: tuple[Any, ...] = attrs.field(default=(), eq=False, repr=False)


@attrs.frozen
class ApprovalRequest:
    """One request, as stored (params redacted). ``answers`` holds every attempt, in order."""

    id: str
    state: str
    created_at: float
    expires_at: float
    settled_at: float | None
    action_type: str
    target: str
    agent_id: str | None
    session_id: str | None
    params: dict[str, Any]
    description: str
    digest: str
    policy_fingerprint: str | None
    matched_rule: str | None
    risk_level: str
    decision_reason: str | None
    requirements: ApprovalRequirements
    escalated: bool
    channels: tuple[str, ...]
    owner_host: str
    owner_pid: int
    owner_started: str
    heartbeat_at: float
    replaces: str | None
    audit_id: int | None
    outcome: str | None
    edits: dict[str, Any] | None
    answers: tuple[AnswerRecord, ...] = ()

    @property
    def approvers(self) -> tuple[str, ...]:
        """Distinct identities whose approval was accepted, in answer order."""
        seen: list[str] = []
        for a in self.answers:
            if a.accepted and a.verdict == "approve" and a.responder not in seen:
                seen.append(a.responder)
        return tuple(seen)

    @property
    def settled(self) -> bool:
        return self.state != PENDING


class Settled(Protocol):
    """What the APPROVE step reads of a request once it settled (``approval.flow``,
    ``approval.sought``): an ``ApprovalRequest`` as read or written, or a request answered
    before it was stored (``approval.alongside.AlongsideRows``)."""

    @property
    def id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def outcome(self) -> str | None: ...
    @property
    def edits(self) -> dict[str, Any] | None: ...
    @property
    def escalated(self) -> bool: ...
    @property
    def channels(self) -> tuple[str, ...]: ...
    @property
    def answers(self) -> tuple[AnswerRecord, ...]: ...
    @property
    def approvers(self) -> tuple[str, ...]: ...


@attrs.frozen
class AnswerOutcome:
    """What became of one answer: accepted or not, and the request's state afterwards."""

    accepted: bool
    state: str
    message: str
    request_id: str | None
    #: The request as this answer left it (when it was found), so a waiter in this process
    #: need not read it back.
    request: ApprovalRequest | None = None


def inline_answer(text: str) -> AnswerRecord:
    """The answer a request row holds in its ``answer`` column (``rows.inline_answer_text``):
    id None, nothing stored as an answer row. A value that is not one (edited by hand: ``aegis
    audit verify`` reports it) reads as a refused answer saying so, never as an approval."""
    try:
        at, channel, responder, verdict, reason, accepted, note = json.loads(text)
        return AnswerRecord(
            id=None,
            at=float(at),
            channel=str(channel),
            responder=str(responder),
            verdict=str(verdict),
            reason=None if reason is None else str(reason),
            edits=None,
            accepted=accepted == 1,
            note=None if note is None else str(note),
        )
    except (ValueError, TypeError):
        shown = text[:80] if isinstance(text, str) else type(text).__name__
        return AnswerRecord(None, 0.0, "?", "?", "?", None, None, False, f"unreadable: {shown!r}")


def request_from_row(row: Mapping[str, Any], found: tuple[AnswerRecord, ...]) -> ApprovalRequest:
    inline = row.get("answer")
    if inline is not None:  # given before its request was stored: before any answer row
        found = (inline_answer(inline), *found)
    spec = json.loads(row["requirements"])
    allow = spec.get("allow")
    requirements = ApprovalRequirements(
        allow=None if allow is None else tuple(allow),
        quorum=int(spec.get("quorum", 1)),
        timeout=spec.get("timeout"),
        escalate_after=spec.get("escalate_after"),
        escalate_to=tuple(spec.get("escalate_to") or ()),
    )
    return ApprovalRequest(
        id=row["id"],
        state=row["state"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        settled_at=row["settled_at"],
        action_type=row["action_type"],
        target=row["target"],
        agent_id=row["agent_id"],
        session_id=row["session_id"],
        params=json.loads(row["params"]),
        description=row["description"],
        digest=row["digest"],
        policy_fingerprint=row["policy_fingerprint"],
        matched_rule=row["matched_rule"],
        risk_level=row["risk_level"],
        decision_reason=row["decision_reason"],
        requirements=requirements,
        escalated=bool(row["escalated"]),
        channels=tuple(json.loads(row["channels"])),
        owner_host=row["owner_host"],
        owner_pid=row["owner_pid"],
        owner_started=row["owner_started"],
        heartbeat_at=row["heartbeat_at"],
        replaces=row["replaces"],
        audit_id=row["audit_id"],
        outcome=row["outcome"],
        edits=None if row["edits"] is None else json.loads(row["edits"]),
        answers=found,
    )
