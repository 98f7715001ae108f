"""``ProxyGate``: what only the proxy knows, checked after the user's policy.

Which tools the upstream listed, and which are quarantined: a tool never listed is blocked, a
quarantined one is hidden (blocked) or held for a human. It is a runtime gate
(``Runtime.add_gate``), not a wrapper around the policy, so it holds for every decision
(including the re-check after an approval) whatever policy is swapped in later, and the
policy's own limits are counted as usual. It reads only the proxy's tool table and only ever
makes a decision stricter (the core enforces that too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
from aegis.adapters.mcp.pins import QUARANTINED

from aegis.core.action import Action
from aegis.core.decision import PolicyDecision
from aegis.core.risk import Approval, RiskLevel

if TYPE_CHECKING:
    from aegis.adapters.mcp.proxy import Proxy


class ProxyGate:
    """The proxy's gate on one runtime (``Runtime.add_gate``)."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    def __call__(self, action: Action, decision: PolicyDecision) -> PolicyDecision:
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
