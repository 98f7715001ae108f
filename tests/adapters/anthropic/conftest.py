"""Fixtures for the Anthropic adapter: a real SQLite audit store, a recording executor as the
runtime's own, and approvals a test answers by setting ``human.answer``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from aegis import Action, ApprovalDecision, Policy, Result, ResultStatus, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.runtime.approval import CallbackApprovalHandler
from aegis.runtime.approval_channels import ApprovalChannel
from aegis.runtime.audit import AuditStore

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


class Human:
    def __init__(self) -> None:
        self.answer = ApprovalDecision.deny(approver="ana", reason="no answer")
        self.asked: list[Action] = []

    def __call__(self, action: Action, decision: Any) -> ApprovalDecision:
        self.asked.append(action)
        return self.answer


class Recorder(BaseExecutor):
    """The runtime's executor: remembers every action that really ran."""

    def __init__(self) -> None:
        self.ran: list[Action] = []

    async def execute(self, action: Action) -> Result:
        self.ran.append(action)
        if action.type == "get_broken":
            raise ConnectionError("backend unreachable")
        return Result(action, ResultStatus.SUCCESS, data={"ok": action.type, **action.params})


@pytest.fixture
def human() -> Human:
    return Human()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AuditStore]:
    s = AuditStore(f"sqlite:///{tmp_path / 'audit.db'}")
    await s.open()
    yield s
    await s.close()


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

    async def execute(self, action: Action) -> Result:
        raise AssertionError(f"the runtime's executor ran {action}; the tool should have")


class EditingApprover(ApprovalChannel):
    """Approves every request with the given edits, as a human editing the arguments would."""

    name: ClassVar[str] = "editor"

    def __init__(self, edits: dict[str, Any]) -> None:
        self.edits = edits

    async def notify(self, request: Any, responder: Any) -> None:
        await responder.respond(request.id, "ana", "approve", reason="fixed it", edits=self.edits)
