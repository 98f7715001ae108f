"""The installed ``aegis`` console script, run as a subprocess: real pipes, real exit codes."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

RunScript = Callable[..., subprocess.CompletedProcess[str]]
ANSI = re.compile(r"\x1b\[")


def test_script_help_and_version(run_script: RunScript, tmp_path: Path) -> None:
    help_run = run_script("--help", cwd=tmp_path)
    assert help_run.returncode == 0
    assert "Exit codes" in help_run.stdout
    version = run_script("--version", cwd=tmp_path)
    assert version.returncode == 0
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*\n", version.stdout)


def test_script_policy_round_trip_exit_codes(run_script: RunScript, tmp_path: Path) -> None:
    assert run_script("init", cwd=tmp_path).returncode == 0
    ok = run_script("validate", "policy.yaml", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    bad_text = 'version: "1"\nrules:\n  - name: x\n    risk_level: extreme\n'
    (tmp_path / "bad.yaml").write_text(bad_text)
    bad = run_script("validate", "bad.yaml", cwd=tmp_path)
    assert bad.returncode == 1
    assert re.match(r"^bad\.yaml:\d+:\d+: ", bad.stdout), bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr


def test_script_piped_output_is_plain(run_script: RunScript, tmp_path: Path) -> None:
    assert run_script("init", cwd=tmp_path).returncode == 0
    for args in (("plugins",), ("simulate", "policy.yaml", "read:crm", "delete:db")):
        run = run_script(*args, cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert not ANSI.search(run.stdout)
        assert "│" not in run.stdout and "┃" not in run.stdout


def test_script_usage_errors_are_one_line(run_script: RunScript, tmp_path: Path) -> None:
    for args in (("frobnicate",), ("simulate", "x.yaml", "read"), ("audit", "--limit", "lots")):
        run = run_script(*args, cwd=tmp_path)
        assert run.returncode == 2, (args, run.stderr)
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert run.stderr.startswith("aegis: error:")


def test_script_missing_store_is_exit_3(run_script: RunScript, tmp_path: Path) -> None:
    for args in (("audit",), ("audit", "verify"), ("stats",)):
        run = run_script(*args, cwd=tmp_path)
        assert run.returncode == 3, (args, run.stderr)
        assert "no audit database" in run.stderr
    assert not (tmp_path / "aegis_audit.db").exists()  # looking never creates an empty store


def test_script_demo_runs_non_interactively(run_script: RunScript, tmp_path: Path) -> None:
    run = run_script("demo", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "SCRIPTED" in out
    assert "Executing: read -> crm" in out
    assert "Executing: bulk_update -> crm" in out
    assert "Executing: delete" not in out
    assert list(tmp_path.iterdir()) == []  # the default demo leaves nothing behind
