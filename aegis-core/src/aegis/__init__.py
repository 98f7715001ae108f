"""Aegis: governance middleware for AI agents.

``from aegis import Action, Policy, Runtime`` is the whole quick start. Heavier names are
imported on first use so that ``import aegis`` stays cheap for CLI start-up and plugins.
"""

from __future__ import annotations

__path__ = __import__("pkgutil").extend_path(__path__, __name__)

import importlib
from typing import TYPE_CHECKING, Any

from aegis.core.action import Action
from aegis.core.approval import ApprovalDecision
from aegis.core.decision import PolicyDecision
from aegis.core.result import Result, ResultStatus
from aegis.core.risk import Approval, RiskLevel
from aegis.errors import (
    ActionError,
    AegisError,
    ApprovalError,
    AuditError,
    ExecutorError,
    PluginError,
    PolicyError,
)
from aegis.hookspecs import hookimpl

if TYPE_CHECKING:
    from aegis.core.hierarchy import PolicyHierarchy
    from aegis.core.plan import ExecutionPlan, PlanStep
    from aegis.core.policy import Policy
    from aegis.core.retry import RetryPolicy
    from aegis.runtime.approval.handlers import (
        ApprovalHandler,
        AutoApprovalHandler,
        CallbackApprovalHandler,
        CLIApprovalHandler,
    )
    from aegis.runtime.audit import AuditStore
    from aegis.runtime.engine import Runtime
    from aegis.runtime.hooks import RuntimeHooks
    from aegis.runtime.watcher import PolicyWatcher

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "Policy": "aegis.core.policy",
    "PolicyHierarchy": "aegis.core.hierarchy",
    "ExecutionPlan": "aegis.core.plan",
    "PlanStep": "aegis.core.plan",
    "RetryPolicy": "aegis.core.retry",
    "Runtime": "aegis.runtime.engine",
    "RuntimeHooks": "aegis.runtime.hooks",
    "PolicyWatcher": "aegis.runtime.watcher",
    "AuditStore": "aegis.runtime.audit",
    "ApprovalHandler": "aegis.runtime.approval.handlers",
    "AutoApprovalHandler": "aegis.runtime.approval.handlers",
    "CallbackApprovalHandler": "aegis.runtime.approval.handlers",
    "CLIApprovalHandler": "aegis.runtime.approval.handlers",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aegis' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Action",
    "ActionError",
    "AegisError",
    "Approval",
    "ApprovalDecision",
    "ApprovalError",
    "ApprovalHandler",
    "AuditError",
    "AuditStore",
    "AutoApprovalHandler",
    "CLIApprovalHandler",
    "CallbackApprovalHandler",
    "ExecutionPlan",
    "ExecutorError",
    "PlanStep",
    "PluginError",
    "Policy",
    "PolicyDecision",
    "PolicyError",
    "PolicyHierarchy",
    "PolicyWatcher",
    "Result",
    "ResultStatus",
    "RetryPolicy",
    "RiskLevel",
    "Runtime",
    "RuntimeHooks",
    "hookimpl",
    "__version__",
]
