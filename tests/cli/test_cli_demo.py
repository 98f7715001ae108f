"""``aegis demo`` end to end, in a temp dir, non-interactively (as in CI)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from cli_helpers import AEGIS_SCRIPT, RunCli


def audit_rows(out: str) -> list[list[str]]:
    """The demo's audit table (after its title line) → rows of cells."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Audit trail (session"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def test_demo_default_runs_quickstart_and_leaves_nothing(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("demo")
    assert result.code == 0, result.err
    out = result.out
    assert "Approvals: SCRIPTED" in out  # clearly labelled: nobody was asked
    assert "Execution plan (3 actions)" in out
    assert "Executing: read -> crm" in out
    assert "[aegis-demo scripted approver] bulk_update -> crm: yes" in out
    assert "Executing: bulk_update -> crm" in out
    assert "Executing: delete" not in out
    # action, target, risk, decision, result (after id, date, time, session, agent)
    assert [r[5:] for r in audit_rows(out)] == [
        ["read", "crm", "LOW", "auto", "success"],
        ["bulk_update", "crm", "HIGH", "approved", "success"],
        ["delete", "crm", "CRITICAL", "blocked", "blocked"],
    ]
    assert list(tmp_path.iterdir()) == []


def test_demo_scripted_no_denies_and_does_not_execute(run_cli: RunCli) -> None:
    result = run_cli("demo", "--answer", "no")
    assert result.code == 0, result.err
    assert "Executing: bulk_update" not in result.out
    assert "bulk_update -> crm: denied" in result.out
    assert audit_rows(result.out)[1][8:] == ["denied", "denied"]


def test_demo_db_keeps_and_appends_visibly(run_cli: RunCli, tmp_path: Path) -> None:
    first = run_cli("demo", "--db", "sqlite:///aegis_audit.db")
    assert first.code == 0, first.err
    assert "appending" not in first.out
    audit = run_cli("audit", "-f", "json")
    assert [(r["action_type"], r["decision"]) for r in json.loads(audit.out)] == [
        ("read", "auto"),
        ("bulk_update", "approved"),
        ("delete", "blocked"),
    ]
    assert json.loads(audit.out)[1]["approver"] == "aegis-demo scripted approver"
    second = run_cli("demo", "--db", "sqlite:///aegis_audit.db")
    assert "appending to existing records" in second.out
    assert [int(r[0]) for r in audit_rows(second.out)] == [4, 5, 6]  # only this run's session
    assert len(json.loads(run_cli("audit", "-f", "json").out)) == 6
    assert run_cli("audit", "verify").code == 0


def test_demo_with_own_policy(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "lockdown.yaml").write_text(
        'version: "1"\ndefaults: {risk_level: critical, approval: block}\nrules: []\n'
    )
    result = run_cli("demo", "--policy", "lockdown.yaml")
    assert result.code == 0, result.err
    assert "Executing:" not in result.out
    assert [r[8:] for r in audit_rows(result.out)] == [["blocked", "blocked"]] * 3


def test_demo_bad_arguments(run_cli: RunCli, tmp_path: Path) -> None:
    ask = run_cli("demo", "--answer", "ask")
    assert ask.code == 2 and "needs a terminal" in ask.err
    missing = run_cli("demo", "--policy", "nope.yaml")
    assert missing.code == 2 and "nope.yaml" in missing.err
    (tmp_path / "bad.yaml").write_text("rules: [1]\n")
    invalid = run_cli("demo", "--policy", "bad.yaml")
    assert invalid.code == 1 and "bad.yaml:" in invalid.err
    assert list(tmp_path.iterdir()) == [tmp_path / "bad.yaml"]


@pytest.mark.parametrize(("typed", "executed"), [(b"y\n", True), (b"n\n", False)])
def test_demo_asks_a_human_on_a_terminal(tmp_path: Path, typed: bytes, executed: bool) -> None:
    """stdin is a pseudo-terminal: the CLI approval handler asks, and the answer decides."""
    primary, secondary = os.openpty()
    try:
        proc = subprocess.Popen(
            [str(AEGIS_SCRIPT), "demo"],
            cwd=tmp_path,
            stdin=secondary,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(primary, typed)  # typed ahead; the handler reads one line when it asks
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(secondary)
        os.close(primary)
    assert proc.returncode == 0, err
    assert "Approvals: you will be asked at this terminal" in out
    assert "SCRIPTED" not in out
    assert "approval needed: bulk_update -> crm" in err
    assert ("Executing: bulk_update -> crm" in out) is executed
    assert audit_rows(out)[1][8:] == (["approved", "success"] if executed else ["denied", "denied"])
