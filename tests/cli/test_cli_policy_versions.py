"""``aegis policy history|show|diff|rollback`` on a real SQLite audit database."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import RunCli

from aegis.runtime.audit import AuditStore
from aegis.runtime.policy_versions import PolicyHistory

ALLOW = "rules:\n  - name: reads\n    match: {type: read}\n    approval: auto\n"
BLOCK = "rules:\n  - name: reads\n    match: {type: read}\n    approval: block\n"


def _seeded(tmp_path: Path) -> str:
    db = str(tmp_path / "audit.db")
    history = PolicyHistory(AuditStore(db))
    history.seed(ALLOW, path="policy.yaml")
    history.add(BLOCK, author="key:ops", note="lock reads")
    return db


def test_history_lists_versions_newest_first(tmp_path: Path, run_cli: RunCli) -> None:
    db = _seeded(tmp_path)
    out = run_cli("policy", "history", "--db", db, "-f", "json")
    assert out.code == 0, out.err
    rows = json.loads(out.out)
    assert [(r["version"], r["author"], r["source"]) for r in rows] == [
        (2, "key:ops", "api"),
        (1, "file:policy.yaml", "file"),
    ]
    table = run_cli("policy", "history", "--db", db)
    assert "lock reads" in table.out and "key:ops" in table.out


def test_rollback_then_show_and_diff(tmp_path: Path, run_cli: RunCli) -> None:
    db = _seeded(tmp_path)
    done = run_cli("policy", "rollback", "1", "--db", db, "--note", "too strict")
    assert done.code == 0, done.err
    assert "version 3" in done.out
    assert run_cli("policy", "show", "3", "--db", db).out == ALLOW
    diff = run_cli("policy", "diff", "2", "3", "--db", db, "-f", "json")
    payload = json.loads(diff.out)
    assert "-    approval: block" in payload["text"] and "+    approval: auto" in payload["text"]
    assert {(c["old"], c["new"]) for c in payload["sampled"]["changes"]} == {("block", "auto")}
    latest = json.loads(run_cli("policy", "history", "--db", db, "-f", "json").out)[0]
    assert (latest["rolled_back_to"], latest["note"]) == (1, "too strict")
    assert latest["author"].startswith("cli:")


def test_unknown_version_is_a_one_line_error(tmp_path: Path, run_cli: RunCli) -> None:
    db = _seeded(tmp_path)
    out = run_cli("policy", "rollback", "7", "--db", db)
    assert out.code == 2
    assert out.err.strip() == "aegis: error: no policy version 7 (versions 1-2)"
    assert run_cli("policy", "history", "--db", db, "-f", "json").out.count('"version"') == 2
