"""Gates: checks an integration adds after the policy's decision, whatever policy is in force.

The MCP proxy blocks tools its upstream never listed and holds back quarantined ones. Wrapping
the policy to do that was lost the moment the policy was swapped (``update_policy``, a
reload, the server's policy API), and it hid what the runtime asks of a policy (``stateful``,
so limits were never counted). A gate is held by the runtime instead (``Runtime.add_gate``)
and applied in ``Runtime._decide``: to the first decision, to the final one made under the
limits' lock, and to the re-check after an approval.

A gate may only make a decision stricter. A laxer answer is not taken (a stricter approval
in it is); an exception or anything but a well-formed decision about the same action blocks.
When the policy named approver terms (who, how many, how long), they stand whatever the gate
says; a gate that asks for approval of an action the policy let through may name its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from aegis.core.action import Action
from aegis.core.decision import PolicyDecision
from aegis.core.risk import Approval, RiskLevel
from aegis.runtime.stops import blocked_decision

#: ``gate(action, decision) -> decision``: the policy's decision, possibly made stricter.
PolicyGate = Callable[[Action, PolicyDecision], PolicyDecision]

_RANK = {Approval.AUTO: 0, Approval.APPROVE: 1, Approval.BLOCK: 2}


def apply_gates(
    gates: Sequence[PolicyGate], action: Action, decision: PolicyDecision
) -> PolicyDecision:
    """``decision`` through every gate in turn, never laxer than it went in."""
    for gate in gates:
        name = getattr(gate, "__qualname__", None) or type(gate).__name__
        try:
            gated = gate(action, decision)
        except Exception as exc:
            return blocked_decision(action, f"gate {name} failed: {type(exc).__name__}: {exc}")
        if (
            not isinstance(gated, PolicyDecision)
            or type(gated.approval) is not Approval
            or type(gated.risk_level) is not RiskLevel
            or (gated.action is not action and gated.action != action)
        ):
            return blocked_decision(action, f"gate {name} returned no usable decision")
        decision = _stricter(decision, gated)
    return decision


def _stricter(before: PolicyDecision, gated: PolicyDecision) -> PolicyDecision:
    if gated is before:
        return before
    if _RANK[gated.approval] < _RANK[before.approval]:
        return before  # a gate never lets through what the policy held back
    if gated.risk_level < before.risk_level:
        gated = attrs.evolve(gated, risk_level=before.risk_level)
    if gated.approval is Approval.APPROVE and before.requirements is not None:
        gated = attrs.evolve(gated, requirements=before.requirements)  # the rule's, always
    return gated
