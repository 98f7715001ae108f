"""One small hierarchy, so callers can catch ``AegisError`` and get a message they can act on."""

from __future__ import annotations

import attrs


class AegisError(Exception):
    """Base of every error Aegis raises on purpose."""


@attrs.frozen
class PolicyIssue:
    """One problem in a policy source, located as precisely as the source allows."""

    message: str
    file: str = "<policy>"
    line: int | None = None
    column: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class PolicyError(AegisError):
    """A policy that cannot be loaded. ``issues`` holds every problem found, first one first."""

    def __init__(self, issues: list[PolicyIssue] | PolicyIssue | str) -> None:
        if isinstance(issues, str):
            issues = [PolicyIssue(issues)]
        elif isinstance(issues, PolicyIssue):
            issues = [issues]
        self.issues: list[PolicyIssue] = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class ActionError(AegisError, TypeError, ValueError):
    """An ``Action`` that cannot be made: a bad name, or a param Aegis cannot freeze.

    Also a ``TypeError``/``ValueError``, so code that guarded ``Action(...)`` with either keeps
    working.
    """


class PluginError(AegisError):
    """A plugin could not be loaded, or registered something that clashes."""


class ApprovalError(AegisError):
    """An approval handler misbehaved (the runtime turns this into a denial)."""


class AuditError(AegisError):
    """The audit store could not write or read; on the write path the action does not run."""


class ExecutorError(AegisError):
    """No executor for an action, or an executor that could not be built."""
