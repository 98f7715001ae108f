"""Shared pieces for the approval tests (imported by basename, like the other test helpers)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aegis import Action, Policy, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.core.result import Result, ResultStatus
from aegis.runtime.approval.channels import ApprovalChannel, Responder
from aegis.runtime.approval.store import ApprovalRequest

PAY_POLICY = """
version: "1"
defaults: {risk_level: low, approval: auto}
rules:
  - name: big_payment
    match: {type: pay}
    risk_level: high
    approval: approve
"""


#: The action most approval tests run: a payment the PAY_POLICY rule asks approval for.
PAY = Action("pay", "bank", params={"amount": 5000, "to": "acct-1"})


async def run_auto(audit: Any, action: Action = PAY) -> Result:
    """``action`` run once under PAY_POLICY with the built-in ``auto`` handler, on ``audit``
    (a URL or a store); the runtime is closed before this returns."""
    async with Runtime(
        executor=Recorder(),
        policy=Policy.from_yaml_string(PAY_POLICY),
        approval_handler="auto",
        audit=audit,
    ) as rt:
        return await rt.run_one(action)


def policy_text(approvers: str = "", approval: str = "approve", risk: str = "high") -> str:
    extra = f"\n    approvers: {approvers}" if approvers else ""
    return f"""
version: "1"
defaults: {{risk_level: low, approval: auto}}
rules:
  - name: big_payment
    match: {{type: pay}}
    risk_level: {risk}
    approval: {approval}{extra}
"""


class Recorder(BaseExecutor):
    """Remembers exactly what it was asked to run."""

    def __init__(self) -> None:
        self.ran: list[Action] = []

    async def execute(self, action: Action) -> Any:
        self.ran.append(action)
        return Result(action, ResultStatus.SUCCESS, data=dict(action.params))


class ScriptedChannel(ApprovalChannel):
    """A channel whose 'people' are a coroutine given the request and the responder."""

    name = "test"

    def __init__(
        self, script: Callable[[ApprovalRequest, Responder], Awaitable[None]] | None = None
    ) -> None:
        self.script = script
        self.requests: list[ApprovalRequest] = []
        self.settled_seen: list[ApprovalRequest] = []
        self.notified = asyncio.Event()

    async def notify(self, request: ApprovalRequest, responder: Responder) -> None:
        self.requests.append(request)
        self.notified.set()
        if self.script is not None:
            await self.script(request, responder)

    async def settled(self, request: ApprovalRequest) -> None:
        self.settled_seen.append(request)
