"""``Runtime.strictest``: of the names one call may go by, the one whose decision holds it back
most, so an adapter that cannot tell which name a policy was written for escapes no rule."""

from __future__ import annotations

import pytest
from runtime_helpers import RecordingExecutor

from aegis import Action, Policy, Runtime
from aegis.core.risk import Approval

POLICY = """
version: "1"
defaults: {risk_level: low, approval: auto}
rules:
  - {name: no_deletes, match: {type: delete_contact}, risk_level: critical, approval: block}
  - {name: mail, match: {type: "Send Mail"}, risk_level: high, approval: approve}
"""


def runtime() -> Runtime:
    return Runtime(
        executor=RecordingExecutor(),
        policy=Policy.from_yaml_string(POLICY),
        audit="sqlite:///:memory:",
        agent_id="clerk",
    )


@pytest.mark.parametrize(
    ("names", "chosen", "approval"),
    [
        (["Delete Contact", "delete_contact"], "delete_contact", Approval.BLOCK),
        (["delete_contact", "Send Mail"], "delete_contact", Approval.BLOCK),
        (["send_mail", "Send Mail"], "Send Mail", Approval.APPROVE),
        (["Look Up", "look_up"], "Look Up", Approval.AUTO),  # alike: the first
    ],
)
def test_the_strictest_name_wins_bound_as_evaluate_binds(
    names: list[str], chosen: str, approval: Approval
) -> None:
    action, decision = runtime().strictest([Action(n, "crm") for n in names])
    assert (action.type, decision.approval) == (chosen, approval)
    assert action.agent_id == "clerk"


def test_no_action_is_an_error() -> None:
    with pytest.raises(ValueError):
        runtime().strictest([])
