"""``aegis serve --shadow FILE``: the candidate is recorded with each action, decides nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
from server_helpers import POLICY, ServerProcess, free_port

AEGIS = str(Path(sys.executable).parent / "aegis")

BLOCK_ALL = 'version: "1"\ndefaults: {risk_level: critical, approval: block}\nrules: []\n'


def test_serve_records_the_shadow_and_the_report_reads_it(tmp_path: Path) -> None:
    policy, candidate = tmp_path / "policy.yaml", tmp_path / "candidate.yaml"
    policy.write_text(POLICY)
    candidate.write_text(BLOCK_ALL)
    db = f"sqlite:///{tmp_path / 'a.db'}"
    port = free_port()
    proc = ServerProcess(
        [str(policy), "--database", db, "--shadow", str(candidate)], port, str(tmp_path / "log")
    )
    try:
        proc.wait_ready()
        # Live: read_safe allows it, although the shadow blocks everything.
        out = httpx.post(
            proc.url + "/api/v1/execute", json={"action_type": "read", "target": "crm"}
        ).json()
        assert out["status"] == "authorized", out
        assert httpx.post(proc.url + out["outcome_url"], json={"status": "success"}).is_success
        blocked = httpx.post(
            proc.url + "/api/v1/execute", json={"action_type": "delete", "target": "crm"}
        ).json()
        assert blocked["status"] == "blocked", blocked
    finally:
        proc.stop()
    report = subprocess.run(
        [AEGIS, "shadow", "report", "--db", db, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert data["records"] == 2 and data["changed"] == 1 and data["unchanged"] == 1
    (change,) = data["changes"]
    assert (change["live"], change["shadow"], change["live_rule"]) == ("auto", "block", "read_safe")
    verify = subprocess.run(
        [AEGIS, "audit", "verify", "--db", db], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_bad_shadow_file_stops_the_start_with_one_line(tmp_path: Path) -> None:
    policy, candidate = tmp_path / "policy.yaml", tmp_path / "candidate.yaml"
    policy.write_text(POLICY)
    candidate.write_text("version: '1'\nrules:\n  - name: x\n    approval: maybe\n")
    done = subprocess.run(
        [AEGIS, "serve", str(policy), "--shadow", str(candidate)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "candidate.yaml" in done.stderr and "Traceback" not in done.stderr
