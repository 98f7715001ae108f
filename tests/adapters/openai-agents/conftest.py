"""Fixtures for the OpenAI Agents SDK adapter: a real SQLite audit store and a runtime whose
approvals a test answers by setting ``human.answer``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")

import pytest
from agents import set_tracing_disabled
from openai_agents_helpers import POLICY

from aegis import Action, ApprovalDecision, Policy, Result, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.runtime.approval import CallbackApprovalHandler
from aegis.runtime.approval_channels import ApprovalChannel
from aegis.runtime.audit import AuditStore

set_tracing_disabled(True)


class Human:
    """Answers approval requests the way the test says, and remembers what it was asked."""

    def __init__(self) -> None:
        self.answer: ApprovalDecision = ApprovalDecision.deny(approver="ana", reason="no answer")
        self.asked: list[Action] = []

    def __call__(self, action: Action, decision: Any) -> ApprovalDecision:
        self.asked.append(action)
        return self.answer


@pytest.fixture
def human() -> Human:
    return Human()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AuditStore]:
    s = AuditStore(f"sqlite:///{tmp_path / 'audit.db'}")
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def runtime(store: AuditStore, human: Human) -> AsyncIterator[Runtime]:
    async with Runtime(
        executor=_Unused(),
        policy=Policy.from_yaml_string(POLICY, source="agents-policy.yaml"),
        approval_handler=CallbackApprovalHandler(human),
        audit=store,
        session_id="sess-42",
    ) as rt:
        yield rt


class _Unused(BaseExecutor):
    """The runtime's own executor: governed tools must never fall through to it."""

    async def execute(self, action: Action) -> Result:
        raise AssertionError(f"the runtime's executor ran {action}; the tool should have")


class EditingApprover(ApprovalChannel):
    """Approves every request with the given edits, as a human editing the arguments would."""

    name: ClassVar[str] = "editor"

    def __init__(self, edits: dict[str, Any]) -> None:
        self.edits = edits

    async def notify(self, request: Any, responder: Any) -> None:
        await responder.respond(request.id, "ana", "approve", reason="fixed it", edits=self.edits)
