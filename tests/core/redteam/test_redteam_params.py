"""Odd Action params: what was approved is what runs, and every attempt is audited."""

from __future__ import annotations

from typing import Any

import pytest
from redteam_helpers import Recorder

from aegis import Action, Policy, Runtime
from aegis.core.decision import PolicyDecision
from aegis.core.result import ResultStatus
from aegis.errors import ActionError
from aegis.runtime.approval.handlers import CallbackApprovalHandler
from aegis.runtime.audit import AuditStore

BLOCK_DELETES = """
version: "1"
defaults: {risk_level: medium, approval: approve}
rules:
  - {name: no_deletes, match: {type: "delete*"}, risk_level: critical, approval: block}
"""


@pytest.mark.parametrize(
    ("value", "mutate", "approved_copy"),
    [
        ({1, 2}, lambda v: v.add(999), {1, 2}),
        (bytearray(b"rm -rf /tmp/x"), lambda v: v.extend(b" /"), bytearray(b"rm -rf /tmp/x")),
    ],
)
async def test_mutating_a_param_while_a_human_decides_changes_nothing(
    approve_policy: Policy, store: AuditStore, value: Any, mutate: Any, approved_copy: Any
) -> None:
    shown: list[Any] = []

    def approve(action: Action, decision: PolicyDecision) -> bool:
        shown.append(action.params["v"])
        mutate(value)  # the caller's object changes after the human saw it
        return True

    executor = Recorder()
    async with Runtime(
        executor=executor,
        policy=approve_policy,
        audit=store,
        approval_handler=CallbackApprovalHandler(approve),
    ) as rt:
        result = await rt.run_one(Action("update", "crm", params={"v": value}))
    assert result.status is ResultStatus.SUCCESS
    assert shown == [approved_copy]
    (ran,) = executor.ran
    assert ran.params["v"] == approved_copy, "the executor ran something nobody approved"


@pytest.mark.parametrize(
    "params",
    [
        {"n": 10**5000},  # more digits than json/str() will convert
    ],
    ids=["huge-int"],
)
async def test_blocked_attempt_with_unencodable_params_is_still_audited(
    store: AuditStore, params: dict[str, Any]
) -> None:
    executor = Recorder()
    policy = Policy.from_yaml_string(BLOCK_DELETES)
    async with Runtime(executor=executor, policy=policy, audit=store) as rt:
        result = await rt.run_one(Action("delete", "crm", params=params))
    assert executor.ran == []
    assert result.status is ResultStatus.BLOCKED
    (rec,) = store.query(limit=None)
    assert rec.result == "blocked" and rec.matched_rule == "no_deletes"
    assert set(rec.params) == set(params)
    assert store.verify().ok


def test_a_key_json_cannot_hold_is_refused_when_the_action_is_made() -> None:
    # Frozen params take str keys only: a tuple key used to reach the audit encoder.
    with pytest.raises(ActionError, match=r"params\.nested: key \(1, 2\) is a tuple"):
        Action("delete", "crm", params={"nested": {(1, 2): "tuple key"}})
