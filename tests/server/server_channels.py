"""Approval channels for server processes started by tests, installed as a plugin would be
(``channel_plugin`` writes a ``.dist-info`` with the entry point onto the process's path).

* ``ticket`` — answers later, like Slack or e-mail: it "posts" each request by appending a line
  to ``$AEGIS_TEST_TICKETS``; people answer through the approvals API.
* ``gatekeeper`` — a one-shot handler: it approves once the file ``$AEGIS_TEST_GATE`` exists.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from aegis.core.approval import ApprovalDecision
from aegis.hookspecs import Register, hookimpl
from aegis.runtime.approval.channels import ApprovalChannel, Responder
from aegis.runtime.approval.handlers import ApprovalHandler


class TicketChannel(ApprovalChannel):
    name = "ticket"

    async def notify(self, request: Any, responder: Responder) -> None:
        line = json.dumps({"request": request.id, "pid": os.getpid()})
        with open(os.environ["AEGIS_TEST_TICKETS"], "a", encoding="utf-8") as f:
            f.write(line + "\n")


class Gatekeeper(ApprovalHandler):
    name = "gatekeeper"

    async def request_approval(self, action: Any, decision: Any) -> ApprovalDecision:
        gate = Path(os.environ["AEGIS_TEST_GATE"])
        while not gate.exists():
            await asyncio.sleep(0.1)
        return ApprovalDecision(True, approver=f"gatekeeper:{os.getpid()}")


@hookimpl
def aegis_register_approval_handlers(register: Register) -> None:
    register("ticket", TicketChannel, description="test: a channel answered later")
    register("gatekeeper", Gatekeeper, description="test: a one-shot handler")


def channel_plugin(where: Path) -> Path:
    """A directory holding this module's distribution metadata (put it on PYTHONPATH)."""
    info = where / "aegis_test_channels-0.0.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: aegis-test-channels\nVersion: 0.0.0\n"
    )
    (info / "entry_points.txt").write_text("[aegis]\ntest_channels = server_channels\n")
    return where
