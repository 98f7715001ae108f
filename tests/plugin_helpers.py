"""What the core's and every plugin's tests share, needing nothing but the core.

A pytest plugin (``tests/conftest.py`` loads it with ``pytest_plugins``), so its fixtures reach
every test under tests/ — including each plugin's own session, where only the core and that
plugin are installed — and a module of stand-ins the tests import by name::

    from plugin_helpers import Human, Recorder, payment_policy

Fixtures: ``audit_url`` (a fresh SQLite file), ``store`` (an open ``AuditStore`` on it),
``audit_rows`` (reads the records back as ``aegis audit`` does), ``human`` and ``recorder``.
A directory's own conftest may still define a fixture of the same name; the nearer one wins.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from aegis import Action, ApprovalDecision, Policy, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.core.result import Result, ResultStatus
from aegis.runtime.approval.channels import ApprovalChannel
from aegis.runtime.audit import AuditRecord, AuditStore

#: The action the approval-channel tests ask a human about (a key the redactor must hide).
PAY = Action("pay", "bank", params={"amount": 5000, "api_key": "sk-live-abcdefghijklmnop1234"})


#: For governed tools (LangChain, CrewAI): look-ups, searches and the tool that always breaks
#: run; deletes are blocked; anything else asks a human.
TOOLS_POLICY = """
version: "1"
defaults: { risk_level: medium, approval: approve }
rules:
  - name: lookups
    match: { type: "lookup*" }
    risk_level: low
    approval: auto
  - name: searches
    match: { type: "search*" }
    risk_level: low
    approval: auto
  - name: flaky_is_fine
    match: { type: "flaky*" }
    risk_level: low
    approval: auto
  - name: no_deletes
    match: { type: "delete*" }
    risk_level: critical
    approval: block
"""


def payment_policy(
    approvers: str = "",
    *,
    above: int | None = None,
    block_above: int | None = None,
    extra_rules: str = "",
) -> Policy:
    """``pay`` needs a human (``approvers`` as YAML, if given), everything else runs.

    ``above``: only payments over that amount ask; ``block_above``: payments over that are
    blocked outright; ``extra_rules``: YAML rule items put before the ``pay`` rules.
    """
    who = f"\n    approvers: {approvers}" if approvers else ""
    block = (
        f"""
  - name: huge_payment
    match: {{type: pay}}
    conditions: {{param_gt: {{amount: {block_above}}}}}
    risk_level: critical
    approval: block"""
        if block_above is not None
        else ""
    )
    when = f"\n    conditions: {{param_gt: {{amount: {above}}}}}" if above is not None else ""
    return Policy.from_yaml_string(
        f"""
version: "1"
defaults: {{risk_level: low, approval: auto}}
rules:{extra_rules}{block}
  - name: big_payment
    match: {{type: pay}}{when}
    risk_level: high
    approval: approve{who}
"""
    )


class Recorder(BaseExecutor):
    """An executor that remembers every action that really ran, and succeeds."""

    def __init__(self) -> None:
        self.ran: list[Action] = []

    async def execute(self, action: Action) -> Any:
        self.ran.append(action)
        return Result(action, ResultStatus.SUCCESS)


class Unreachable(BaseExecutor):
    """The runtime's own executor where a governed tool runs itself: it must never be used."""

    async def execute(self, action: Action) -> Result:
        raise AssertionError(f"the runtime's executor ran {action}; the tool should have")


class Human:
    """A ``CallbackApprovalHandler`` callback: answers as the test sets ``answer`` (a denial
    until then), and remembers what it was asked."""

    def __init__(self) -> None:
        self.answer: ApprovalDecision = ApprovalDecision.deny(approver="ana", reason="no answer")
        self.asked: list[Action] = []

    def __call__(self, action: Action, decision: Any) -> ApprovalDecision:
        self.asked.append(action)
        return self.answer


class EditingApprover(ApprovalChannel):
    """Approves every request with the given edits, as a human editing the arguments would."""

    name: ClassVar[str] = "editor"

    def __init__(self, edits: dict[str, Any]) -> None:
        self.edits = edits

    async def notify(self, request: Any, responder: Any) -> None:
        await responder.respond(request.id, "ana", "approve", reason="fixed it", edits=self.edits)


class ChannelRun:
    """One action (``PAY``) waiting for approval in the background, asked through ``channel``;
    ``await run.result()`` gives its result and closes the channel."""

    def __init__(
        self, store: AuditStore, channel: Any, pol: Policy, timeout: float, action: Action = PAY
    ) -> None:
        self.executor = Recorder()
        self.channel = channel
        self.runtime = Runtime(
            executor=self.executor,
            policy=pol,
            approval_handler=channel,
            audit=store,
            approval_timeout=timeout,
        )
        self.task = asyncio.ensure_future(self._go(action))

    async def _go(self, action: Action) -> Result:
        async with self.runtime as rt:
            return await rt.run_one(action)

    async def result(self) -> Result:
        try:
            return await asyncio.wait_for(self.task, 20)
        finally:
            await asyncio.sleep(0.3)  # let the channel's closing edit of its message go out
            await self.channel.close()


def read_audit(url: str) -> list[AuditRecord]:
    """Every record of the store at ``url``, read by a store of its own as ``aegis audit`` does."""
    reader = AuditStore(url)
    reader.open_sync()
    try:
        return reader.query(limit=None)
    finally:
        reader.close_sync()


@pytest.fixture
def audit_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit.db'}"


@pytest.fixture
async def store(audit_url: str) -> AsyncIterator[AuditStore]:
    s = AuditStore(audit_url)
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def audit_rows(audit_url: str) -> Callable[[], list[AuditRecord]]:
    """Call it to read the audit trail at ``audit_url`` as it is at that moment."""
    return lambda: read_audit(audit_url)


@pytest.fixture
def human() -> Human:
    return Human()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
