"""The approval handlers that ship with the core, registered like any plugin's."""

from __future__ import annotations

from aegis.hookspecs import Register, hookimpl
from aegis.runtime.approval.channels import QueueChannel
from aegis.runtime.approval.handlers import (
    AutoApprovalHandler,
    CallbackApprovalHandler,
    CLIApprovalHandler,
)


@hookimpl
def aegis_register_approval_handlers(register: Register) -> None:
    register("cli", CLIApprovalHandler, description="Ask at the terminal; no TTY or EOF denies")
    register("auto", AutoApprovalHandler, description="Approve everything (tests, policy-only)")
    register(
        "queue",
        QueueChannel,
        description="Wait in the audit database for 'aegis approvals approve|deny' (any process)",
    )
    register("callback", CallbackApprovalHandler, description="Delegate to a Python callable")
