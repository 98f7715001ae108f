"""``GatedPolicy``: the user's policy with the proxy's own gate around it.

Apart from ``proxy`` because it is what the runtime holds as its policy, not part of serving
MCP: every decision, including the runtime's re-evaluation after an approval, passes through
it. It reads only the proxy's tool table (which tools were listed, which are quarantined),
and only ever makes a decision stricter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from aegis.adapters.mcp.pins import QUARANTINED

from aegis.core.action import Action
from aegis.core.decision import PolicyDecision
from aegis.core.risk import Approval, RiskLevel

if TYPE_CHECKING:
    from aegis.adapters.mcp.proxy import Proxy


class GatedPolicy:
    """The user's policy, plus what only the proxy knows: which tools exist and which are
    quarantined. Wrapping the policy (not checking beside it) means the runtime's re-evaluation
    after an approval sees the same gate."""

    def __init__(self, inner: Any, proxy: Proxy) -> None:
        self.inner = inner
        self.proxy = proxy

    @property
    def fingerprint(self) -> Any:
        return getattr(self.inner, "fingerprint", None)

    def evaluate(self, action: Action) -> PolicyDecision:
        decision: PolicyDecision = self.inner.evaluate(action)
        if action.metadata.get("mcp") != "tools/call" or not decision.is_allowed:
            return decision  # a policy block stands as the policy said it
        key = (action.target, action.type)
        if key not in self.proxy.known:
            reason = f"{action.type!r} is not a tool the proxy listed for server {action.target!r}"
            return _gate(decision, Approval.BLOCK, "mcp-proxy:unlisted", reason)
        if self.proxy.status.get(key) == QUARANTINED:
            why = self.proxy.quarantine_reason(*key)
            if self.proxy.quarantine == "hide":
                return _gate(decision, Approval.BLOCK, "mcp-proxy:quarantine", why)
            if decision.approval is Approval.AUTO:
                reason = f"{why}; approve-only until accepted"
                return _gate(decision, Approval.APPROVE, "mcp-proxy:quarantine", reason)
        return decision


def _gate(decision: PolicyDecision, approval: Approval, rule: str, reason: str) -> PolicyDecision:
    """The policy's decision made stricter by the proxy; the audit names the proxy's rule."""
    return attrs.evolve(
        decision,
        approval=approval,
        risk_level=max(decision.risk_level, RiskLevel.HIGH),
        matched_rule=rule,
        reason=reason,
    )
