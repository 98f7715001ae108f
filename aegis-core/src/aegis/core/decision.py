"""The policy's answer for one action."""

from __future__ import annotations

import attrs

from aegis.core.action import Action
from aegis.core.approvers import ApprovalRequirements
from aegis.core.risk import Approval, RiskLevel


@attrs.frozen
class PolicyDecision:
    """Risk, approval requirement and the rule that decided.

    ``unknown_conditions`` names conditions that could not be evaluated (missing or mistyped
    param, NaN, oversized input); their presence never made this decision laxer. ``flags``
    says why the action's names looked like an imitation (mixed scripts, stray combining
    marks: see ``aegis.core.names``); a flagged action is never ``auto``.
    """

    action: Action
    risk_level: RiskLevel
    approval: Approval
    matched_rule: str | None = None
    reason: str = ""
    unknown_conditions: tuple[str, ...] = ()
    policy_fingerprint: str | None = None
    #: The matched rule's ``approvers`` terms when it requires approval (None: any answer a
    #: configured channel authenticated, one approver, the runtime's timeout).
    requirements: ApprovalRequirements | None = None
    flags: tuple[str, ...] = ()

    @property
    def is_allowed(self) -> bool:
        """False only for ``block``; ``approve`` is allowed subject to a human."""
        return self.approval is not Approval.BLOCK

    @property
    def requires_approval(self) -> bool:
        return self.approval is Approval.APPROVE
