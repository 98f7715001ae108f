"""``aegis demo``: the README quick start, run for real, with nothing to set up.

It runs three actions through a real ``Runtime`` with the built-in ``default`` policy (or
``--policy FILE``): ``read crm`` runs on its own, ``bulk_update crm`` with ``count=150`` needs
approval, ``delete crm`` is blocked. Then it prints the audit trail those actions left.

Where the audit goes: by default a fresh SQLite file in a temporary directory that is deleted
when the demo ends, so the demo never touches an audit trail you already have. ``--db URL``
writes to that store instead (``--db sqlite:///aegis_audit.db`` leaves a trail that
``aegis audit`` then shows); an existing store is appended to, never reset, and the demo says so.

Who approves: on a terminal, you (the CLI approval handler asks y/N). Without a terminal (CI,
pipes) a scripted approver answers, clearly labelled as such; ``--answer yes|no`` forces the
scripted answer either way.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from aegis.adapters.base import BaseExecutor
from aegis.cli.errors import CliError, ExitCode

if TYPE_CHECKING:
    from aegis.core.action import Action
    from aegis.core.result import Result
    from aegis.runtime.approval.handlers import ApprovalHandler

SCRIPTED_APPROVER = "aegis-demo scripted approver"


def demo(
    *,
    db: str | None = None,
    policy: Path | None = None,
    answer: Literal["ask", "yes", "no"] | None = None,
) -> int:
    """Run the quick-start scenario (read → auto, bulk_update 150 → approval, delete → blocked).

    Parameters
    ----------
    db
        Audit store URL to keep the records in; default: a temporary SQLite file, deleted after.
    policy
        Policy YAML to use instead of the built-in default template.
    answer
        Approval: ask (a human, needs a terminal), or a scripted yes/no. Default: ask on a
        terminal, yes otherwise.
    """
    if answer is None:
        answer = "ask" if sys.stdin.isatty() else "yes"
    if answer == "ask" and not sys.stdin.isatty():
        raise CliError("--answer ask needs a terminal on stdin; use --answer yes or --answer no")
    if policy is not None and not policy.is_file():
        raise CliError(f"{policy}: no such file")
    import asyncio

    if db is not None:
        return asyncio.run(_run(db, policy, answer, temporary=False))

    import tempfile

    with tempfile.TemporaryDirectory(prefix="aegis-demo-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'aegis_demo_audit.db'}"
        return asyncio.run(_run(url, policy, answer, temporary=True))


async def _run(
    url: str, policy_file: Path | None, answer: Literal["ask", "yes", "no"], *, temporary: bool
) -> int:
    from aegis.builtins.templates import TEMPLATE_DIR
    from aegis.cli.audit_cmds import print_records
    from aegis.cli.output import print_message
    from aegis.core.action import Action
    from aegis.core.policy import Policy
    from aegis.runtime.audit import AuditStore
    from aegis.runtime.engine import Runtime

    source = policy_file or TEMPLATE_DIR / "default.yaml"
    policy = Policy.from_yaml(source)
    handler = _approval_handler(answer)
    store = AuditStore(url)
    try:
        await store.open()
    except Exception as exc:
        raise CliError(f"cannot open audit store {url}: {exc}", ExitCode.STORE_UNREACHABLE) from exc
    try:
        existing = len(store.query(limit=1))
        where = "a temporary SQLite file (deleted when the demo ends)" if temporary else url
        print_message(f"Aegis demo: policy {'built-in default' if policy_file is None else source}")
        print_message(f"Audit: {where}" + ("; appending to existing records" if existing else ""))
        print_message(_approval_note(answer))
        print_message("")
        async with Runtime(
            executor=DemoExecutor(), policy=policy, approval_handler=handler, audit=store
        ) as runtime:
            plan = runtime.plan(
                [
                    Action("read", "crm", description="Fetch contacts"),
                    Action("bulk_update", "crm", params={"count": 150}),
                    Action("delete", "crm", description="Drop table"),
                ]
            )
            print_message(plan.summary())
            print_message("")
            # Each step is decided on its own, so the demo shows all three outcomes even when a
            # policy given with --policy blocks an early one.
            results = await runtime.execute(plan, stop_on_failure=False)
            session = runtime.session_id
        print_message("")
        print_message("Results:")
        for result in results:
            print_message(_describe(result))
        print_message("")
        records = store.query(session=session)
        print_records(records, title=f"Audit trail (session {session[:8]})")
    finally:
        await store.close()
    if temporary:
        print_message(
            "\nKeep the audit next time with `aegis demo --db sqlite:///aegis_audit.db`, "
            "then run `aegis audit`."
        )
    return ExitCode.OK


def _approval_handler(answer: Literal["ask", "yes", "no"]) -> ApprovalHandler:
    from aegis.runtime.approval.handlers import CallbackApprovalHandler, CLIApprovalHandler

    if answer == "ask":
        return CLIApprovalHandler()
    from aegis.core.approval import ApprovalDecision

    approve = answer == "yes"
    reason = f"scripted demo answer: {answer} (no human was asked)"

    def scripted(action: Action, decision: object) -> ApprovalDecision:
        print(f"  [{SCRIPTED_APPROVER}] {action.type} -> {action.target}: {answer}")
        if approve:
            return ApprovalDecision.approve(approver=SCRIPTED_APPROVER, reason=reason)
        return ApprovalDecision.deny(approver=SCRIPTED_APPROVER, reason=reason)

    return CallbackApprovalHandler(scripted)


def _approval_note(answer: str) -> str:
    if answer == "ask":
        return "Approvals: you will be asked at this terminal (y/N)."
    return (
        f"Approvals: SCRIPTED - the demo answers '{answer}' for you "
        "(stdin is not a terminal, or --answer was given). Real runs ask a human."
    )


def _describe(result: Result) -> str:
    line = f"  {result.action.type} -> {result.action.target}: {result.status.value}"
    if result.reason:
        line += f" ({result.reason})"
    elif result.error:
        line += f" ({result.error})"
    return line


class DemoExecutor(BaseExecutor):
    """Stand-in for a real integration: it only prints what it would do."""

    async def execute(self, action: Action) -> Result:
        from aegis.core.result import Result, ResultStatus

        print(f"  Executing: {action.type} -> {action.target}")
        return Result(action=action, status=ResultStatus.SUCCESS, data={"demo": True})
