"""An action that does not run: the one audit record that says why.

Every way out of the pipeline short of the executor (blocked, denied, skipped, a dry run, a
policy that raised or was interrupted, a request that could not be stored) ends here, in one
write. Kept apart from the pipeline (pipeline.py) because the write-ahead step (recorded.py) and
the stateful final decision (limit_state.py) stop actions too, and they must not import the
pipeline that imports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from aegis.core.action import Action
from aegis.core.approval import ApprovalDecision
from aegis.core.decision import PolicyDecision
from aegis.core.result import Result, ResultStatus
from aegis.core.risk import Approval, RiskLevel
from aegis.runtime.approval.alongside import delivered
from aegis.runtime.execution import join_reasons

if TYPE_CHECKING:
    from aegis.runtime.engine import Runtime
    from aegis.runtime.shadow import ShadowVerdict


async def record_stop(
    runtime: Runtime,
    action: Action,
    decision: PolicyDecision,
    status: ResultStatus,
    reason: str,
    *,
    approval: ApprovalDecision | None = None,
    parent_id: int | None = None,
    note: str | None = None,
    shadow: ShadowVerdict | None = None,
) -> Result:
    """Record ``action`` as not run with ``status`` and ``reason``; returns the audited result."""
    await runtime.open()
    result = Result(
        action, status, decision=decision, approval=approval, reason=join_reasons(note, reason)
    )
    audit_id = await runtime.audit.record(result, parent_id=parent_id, shadow=shadow)
    return attrs.evolve(result, audit_id=audit_id, approval=delivered(approval))


def blocked_decision(action: Action, reason: str) -> PolicyDecision:
    """The decision recorded when the policy gave none that can be trusted: block, critical."""
    return PolicyDecision(action, RiskLevel.CRITICAL, Approval.BLOCK, None, reason=reason)
