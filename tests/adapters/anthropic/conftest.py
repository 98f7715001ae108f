"""Fixtures for the Anthropic adapter: a runtime on the shared SQLite ``store`` whose own executor
records what ran (``get_broken`` raises), and whose approvals a test answers by setting
``human.answer`` (tests/plugin_helpers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import plugin_helpers
from aegis import Action, Policy, Result, ResultStatus, Runtime
from aegis.runtime.approval.handlers import CallbackApprovalHandler
from aegis.runtime.audit import AuditStore
from plugin_helpers import Human

POLICY = """\
version: "1"
defaults: {risk_level: medium, approval: approve}
rules:
  - name: reads
    match: {type: "get_*"}
    risk_level: low
    approval: auto
  - name: no_deletes
    match: {type: "delete*"}
    risk_level: critical
    approval: block
  - name: refunds_need_a_human
    match: {type: "refund"}
    risk_level: high
    approval: approve
"""


class Recorder(plugin_helpers.Recorder):
    """The runtime's executor: remembers every action that really ran, echoes its params."""

    async def execute(self, action: Action) -> Result:
        self.ran.append(action)
        if action.type == "get_broken":
            raise ConnectionError("backend unreachable")
        return Result(action, ResultStatus.SUCCESS, data={"ok": action.type, **action.params})


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def runtime(store: AuditStore, human: Human, recorder: Recorder) -> AsyncIterator[Runtime]:
    async with Runtime(
        executor=recorder,
        policy=Policy.from_yaml_string(POLICY, source="anthropic-policy.yaml"),
        approval_handler=CallbackApprovalHandler(human),
        audit=store,
        session_id="sess-7",
        agent_id="support-bot",
    ) as rt:
        yield rt
