"""Shared pieces for the red-team tests (imported by basename, like the other test helpers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aegis import Action
from aegis.adapters.base import BaseExecutor
from aegis.core.result import Result, ResultStatus

AUTO_POLICY = """
version: "1"
defaults: {risk_level: low, approval: auto}
rules: []
"""

APPROVE_POLICY = """
version: "1"
defaults: {risk_level: medium, approval: approve}
rules: []
"""


class Recorder(BaseExecutor):
    """Runs ``make(action)`` and remembers every action it was asked to run."""

    def __init__(self, make: Callable[[Action], Any] | None = None) -> None:
        self.ran: list[Action] = []
        self.verified: list[Action] = []
        self.make = make or (lambda a: Result(a, ResultStatus.SUCCESS))

    async def execute(self, action: Action) -> Any:
        self.ran.append(action)
        return self.make(action)

    async def verify(self, action: Action, result: Result) -> bool:
        self.verified.append(action)
        return True
