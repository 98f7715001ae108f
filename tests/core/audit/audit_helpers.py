"""Builders shared by the audit tests: real value objects, raw SQL for tampering."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, text

from aegis import (
    Action,
    Approval,
    ApprovalDecision,
    PolicyDecision,
    Result,
    ResultStatus,
    RiskLevel,
)
from aegis.runtime.audit import AuditStore


def action(kind: str = "read_contact", target: str = "crm_prod", **kw: Any) -> Action:
    params = kw.pop("params", {"id": 1})
    return Action(kind, target, params=params, **kw)


def decide(
    act: Action,
    approval: Approval = Approval.AUTO,
    risk: RiskLevel = RiskLevel.LOW,
    rule: str | None = "read_safe",
    **kw: Any,
) -> PolicyDecision:
    return PolicyDecision(act, risk, approval, matched_rule=rule, **kw)


async def run_action(
    store: AuditStore,
    act: Action | None = None,
    status: ResultStatus = ResultStatus.SUCCESS,
    approval: ApprovalDecision | None = None,
    **result_kw: Any,
) -> int:
    """What the runtime does for an action that executes: begin, then finish."""
    act = act or action()
    dec = decide(act, Approval.APPROVE if approval else Approval.AUTO)
    audit_id = await store.begin(act, dec, approval)
    result_kw.setdefault("attempts", 1)
    await store.finish(audit_id, Result(act, status, decision=dec, approval=approval, **result_kw))
    return audit_id


def raw(url: str, sql: str, **params: Any) -> list[Any]:
    """Run SQL behind the store's back (the tamperer's view)."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql), params)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


__all__ = [
    "Action",
    "Approval",
    "ApprovalDecision",
    "PolicyDecision",
    "Result",
    "ResultStatus",
    "RiskLevel",
    "action",
    "decide",
    "raw",
    "run_action",
]


def spawn_writers(url: str, processes: int, actions: int, tasks: int = 4) -> None:
    """Run ``processes`` OS processes, each writing ``actions`` actions from ``tasks`` tasks."""
    import subprocess
    import sys
    from pathlib import Path

    here = str(Path(__file__).parent)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import audit_helpers as h; "
        "h.writer_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, here, url, f"proc{i}", str(actions), str(tasks)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    errors = []
    for p in procs:
        _, err = p.communicate(timeout=300)
        if p.returncode != 0:
            errors.append(err)
    assert not errors, errors


def writer_main(url: str, session: str, actions: int, tasks: int) -> None:
    """Entry point of one writer process (see ``spawn_writers``)."""
    import asyncio

    async def main() -> None:
        async with AuditStore(url) as store:

            async def worker(n: int) -> None:
                for _ in range(n):
                    await run_action(store, action(session_id=session))

            share = [actions // tasks + (1 if i < actions % tasks else 0) for i in range(tasks)]
            await asyncio.gather(*(worker(n) for n in share))

    asyncio.run(main())
