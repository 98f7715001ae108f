"""The original README's ``AuditLogger`` works, as a face on the one ``AuditStore``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from aegis import Action, Approval, Policy, PolicyDecision, Result, ResultStatus, RiskLevel, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.errors import AuditError
from aegis.runtime.approval.handlers import AutoApprovalHandler
from aegis.runtime.audit import AuditLogger, AuditStore


def _decision(kind: str = "read", approval: Approval = Approval.AUTO) -> PolicyDecision:
    risk = RiskLevel.CRITICAL if approval is Approval.BLOCK else RiskLevel.LOW
    return PolicyDecision(Action(kind, "salesforce", params={"id": 3}), risk, approval, "rule_a")


def test_log_and_get_log_with_the_original_keys(tmp_path: Path) -> None:
    logger = AuditLogger(db_path=tmp_path / "a.db")
    d = _decision()
    first = logger.log("s1", d, result=Result(d.action, ResultStatus.SUCCESS, data={"k": 1}))
    second = logger.log("s2", _decision("write"), result=Result(d.action, ResultStatus.FAILED))
    assert (first, second) == (1, 2)
    entries = logger.get_log()
    assert [e["session_id"] for e in entries] == ["s1", "s2"]
    e = entries[0]
    assert (e["action_type"], e["action_target"], e["result_status"]) == (
        "read",
        "salesforce",
        "success",
    )
    assert json.loads(str(e["action_params"])) == {"id": 3}
    assert (e["risk_level"], e["approval"], e["matched_rule"]) == ("LOW", "auto", "rule_a")
    assert entries[1]["action_type"] == "write"  # the decision's action, with the given session
    assert logger.get_log(session_id="s2")[0]["id"] == 2
    assert logger.count() == 2
    assert logger.count(session_id="s1", result_status="success") == 1
    logger.close()


def test_it_is_the_same_chained_store(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with AuditLogger(db_path=path) as logger:
        d = _decision()
        logger.log("s", d, result=Result(d.action, ResultStatus.SUCCESS))
        assert isinstance(logger.store, AuditStore)
    store = AuditStore(path)
    assert store.verify().status == "ok"
    assert store.query()[0].session_id == "s"


def test_human_decision_and_no_result(tmp_path: Path) -> None:
    with AuditLogger(db_path=tmp_path / "a.db") as logger:
        d = _decision("write", Approval.APPROVE)
        logger.log("s", d, result=Result(d.action, ResultStatus.SUCCESS), human_decision="approved")
        blocked = _decision("delete", Approval.BLOCK)
        logger.log("s", blocked, human_decision="blocked")
        first, second = logger.get_log()
        assert first["human_decision"] == "approved"
        assert second["human_decision"] == "blocked"
        assert second["result_status"] is None  # no outcome known
        assert logger.store.verify().status == "incomplete"


def test_memory_database(tmp_path: Path) -> None:
    with AuditLogger(db_path=":memory:") as logger:
        d = _decision()
        logger.log("s", d, result=Result(d.action, ResultStatus.SUCCESS))
        assert logger.count() == 1
    assert not list(tmp_path.iterdir())


def test_export_jsonl(tmp_path: Path) -> None:
    with AuditLogger(db_path=tmp_path / "a.db") as logger:
        for session in ("a", "b", "a"):
            d = _decision()
            logger.log(session, d, result=Result(d.action, ResultStatus.SUCCESS))
        out = tmp_path / "a.jsonl"
        assert logger.export_jsonl(out, session_id="a") == 2
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["session_id"] for line in lines] == ["a", "a"]


def test_log_from_inside_a_running_event_loop(tmp_path: Path) -> None:
    async def main() -> int:
        with AuditLogger(db_path=tmp_path / "a.db") as logger:
            d = _decision()
            logger.log("s", d, result=Result(d.action, ResultStatus.SUCCESS))
            return logger.count()

    assert asyncio.run(main()) == 1


class Noop(BaseExecutor):
    async def execute(self, action: Action) -> Result:
        return Result(action, ResultStatus.SUCCESS)


POLICY = {
    "version": "1",
    "defaults": {"approval": "block"},
    "rules": [{"name": "reads", "match": {"type": "read*"}, "approval": "auto"}],
}


async def test_runtime_records_into_the_loggers_store(tmp_path: Path) -> None:
    logger = AuditLogger(db_path=tmp_path / "rt.db")
    runtime = Runtime(
        executor=Noop(),
        policy=Policy.from_dict(POLICY),
        approval_handler=AutoApprovalHandler(),
        audit_logger=logger,
        session_id="sess",
    )
    assert runtime.audit is logger.store
    async with runtime:
        await runtime.run_one(Action("read_contact", "crm"))
        await runtime.run_one(Action("delete_contact", "crm"))
    statuses = [e["result_status"] for e in logger.get_log(session_id="sess")]
    assert statuses == ["success", "blocked"]
    logger.close()


def test_runtime_refuses_both_audit_and_audit_logger(tmp_path: Path) -> None:
    logger = AuditLogger(db_path=tmp_path / "x.db")
    with pytest.raises(AuditError, match="not both"):
        Runtime(
            executor=Noop(),
            policy=Policy.from_dict(POLICY),
            audit="sqlite://",
            audit_logger=logger,
        )
    logger.close()


def test_importable_from_aegis_runtime() -> None:
    from aegis.runtime import AuditLogger as FromPackage

    assert FromPackage is AuditLogger
