"""A human's (or a handler's) answer to an approval request.

Handlers may return ``True`` or an ``ApprovalDecision``; the runtime turns every other value,
exception and timeout into a denial (see ``aegis.runtime.approval.normalise``).
"""

from __future__ import annotations

import attrs


@attrs.frozen
class ApprovalDecision:
    """``approver`` is who answered (several, comma-separated, for a quorum); ``request_id``
    names the stored approval request; ``edited`` says the approver changed the params."""

    approved: bool = attrs.field(validator=attrs.validators.instance_of(bool))
    approver: str | None = None
    reason: str | None = None
    handler: str | None = None
    timed_out: bool = False
    request_id: str | None = None
    approvers: tuple[str, ...] = ()
    edited: bool = False
    #: The seal of the request's answers, refused ones included, that this decision was made
    #: on (``aegis.runtime.approval.seal``); written, hashed, into the action's audit record.
    answers_seal: str | None = attrs.field(default=None, eq=False)

    @classmethod
    def approve(cls, approver: str | None = None, reason: str | None = None) -> ApprovalDecision:
        return cls(True, approver=approver, reason=reason)

    @classmethod
    def deny(cls, approver: str | None = None, reason: str | None = None) -> ApprovalDecision:
        return cls(False, approver=approver, reason=reason)
