"""Delegation fields on actions, in the hashed trail, and ``aegis audit --chain``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from audit_helpers import raw, run_action

from aegis import Action, Policy, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.cli import main
from aegis.core.result import Result, ResultStatus
from aegis.runtime.audit import AuditStore
from aegis.runtime.audit.chain import canonical, row_hash
from aegis.runtime.audit.checkpoint import make_checkpoint
from aegis.runtime.audit.proof import prove, verify_proof
from aegis.runtime.audit.schema import BASE_INTENT_COLUMNS, INTENT_COLUMNS


class Ok(BaseExecutor):
    async def execute(self, action: Action) -> Result:
        return Result(action, ResultStatus.SUCCESS)


POLICY = Policy.from_dict(
    {
        "version": "1",
        "defaults": {"approval": "block"},
        "rules": [{"name": "all", "match": {"type": "*"}, "approval": "auto"}],
    }
)


def test_fields_are_validated() -> None:
    a = Action("read", "crm", parent_agent_id="planner", chain_id="task-1", chain_depth=2)
    assert (a.parent_agent_id, a.chain_id, a.chain_depth) == ("planner", "task-1", 2)
    assert Action("read", "crm").chain_depth == 0
    for bad in ({"chain_depth": -1}, {"chain_depth": True}, {"chain_id": 5}):
        with pytest.raises(TypeError):
            Action("read", "crm", **bad)


async def test_the_runtime_records_them_and_aegis_audit_chain_shows_the_tree(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    steps = [
        ("plan", None, "planner", 0),
        ("search", "planner", "researcher", 1),
        ("summarise", "researcher", "writer", 2),
        ("lookup", "planner", "researcher", 1),
        ("post", "planner", "publisher", 1),
    ]
    async with AuditStore(db_url) as store:
        rt = Runtime(executor=Ok(), policy=POLICY, audit=store)
        for kind, parent, agent, depth in steps:
            act = Action(
                kind, "kb", agent_id=agent, parent_agent_id=parent, chain_id="t1", chain_depth=depth
            )
            await rt.run_one(act)
        await rt.run_one(Action("unrelated", "kb", agent_id="x"))
        recs = store.query()
        assert [(r.parent_agent_id, r.chain_id, r.chain_depth) for r in recs[:2]] == [
            (None, "t1", 0),
            ("planner", "t1", 1),
        ]
        assert (recs[-1].chain_id, recs[-1].chain_depth) == (None, None)
        assert store.verify().ok
    capsys.readouterr()
    assert main(["audit", "--db", db_url, "--chain", "t1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "chain t1: 5 action(s), 4 agent(s)"
    assert out[1] == "planner"
    assert out[3] == "  researcher (delegated by planner)"
    assert "    writer (delegated by researcher)" in out
    assert out.index("    writer (delegated by researcher)") < out.index(
        "  publisher (delegated by planner)"
    )
    assert sum(1 for line in out if "#" in line) == 5
    assert main(["audit", "--db", db_url, "--chain", "t1", "-f", "json"]) == 0
    assert [r["agent_id"] for r in json.loads(capsys.readouterr().out)][:2] == [
        "planner",
        "researcher",
    ]


async def test_rows_outside_a_chain_hash_exactly_as_before(db_url: str) -> None:
    async with AuditStore(db_url) as store:
        await run_action(store)
    cols = ", ".join(INTENT_COLUMNS[:BASE_INTENT_COLUMNS])
    [row] = raw(db_url, f"SELECT prev_hash, row_hash, {cols} FROM aegis_audit WHERE id = 1")
    assert row_hash(row[0], 1, canonical(list(row[2:]))) == row[1]


async def test_the_chain_fields_are_tamper_evident(db_url: str, signer: Any, public: Any) -> None:
    async with AuditStore(db_url) as store:
        rt = Runtime(executor=Ok(), policy=POLICY, audit=store)
        await rt.run_one(Action("a", "kb", agent_id="w", parent_agent_id="p", chain_id="t"))
        await rt.run_one(Action("b", "kb", agent_id="w"))
        engine = store.engine
        proof = prove(engine, 1, make_checkpoint(engine, signer))
    assert verify_proof(proof, public).ok
    proof["record"]["intent"]["parent_agent_id"] = "someone_else"
    assert not verify_proof(proof, public).ok
    raw(db_url, "UPDATE aegis_audit SET parent_agent_id = 'q' WHERE id = 1")
    raw(db_url, "UPDATE aegis_audit SET chain_id = 't' WHERE id = 2")  # pulled into a chain
    assert AuditStore(db_url).verify().edited == [1, 2]


async def test_a_store_from_before_the_new_columns(db_url: str) -> None:
    async with AuditStore(db_url) as store:
        await run_action(store)
    raw(db_url, "DROP INDEX ix_aegis_audit_chain")
    for col in ("owner", "parent_agent_id", "chain_id", "chain_depth"):
        raw(db_url, f"ALTER TABLE aegis_audit DROP COLUMN {col}")
    reader = AuditStore(db_url)  # read-only use never alters it
    assert reader.verify().ok and reader.query()[0].chain_id is None
    assert len(raw(db_url, "PRAGMA table_info(aegis_audit)")) == len(INTENT_COLUMNS) + 9
    async with AuditStore(db_url) as store:
        rt = Runtime(executor=Ok(), policy=POLICY, audit=store)
        await rt.run_one(Action("a", "kb", chain_id="t", chain_depth=1))
        assert store.verify().ok
        assert store.get(2).chain_id == "t"  # type: ignore[union-attr]
    assert raw(db_url, "SELECT name FROM sqlite_master WHERE name = 'ix_aegis_audit_chain'")
