"""``aegis serve`` as the original README starts it, and the refusals that keep it safe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from server_helpers import POLICY, ServerProcess, free_port

AEGIS = str(Path(sys.executable).parent / "aegis")


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


def _serve(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AEGIS, "serve", *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_refuses_a_public_address_without_keys(policy: Path, tmp_path: Path) -> None:
    done = _serve(str(policy), "--host", "0.0.0.0", cwd=tmp_path)
    assert done.returncode == 2
    assert "refusing to listen on 0.0.0.0 without API keys" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_key_spec_and_unknown_executor_are_one_line_errors(
    policy: Path, tmp_path: Path
) -> None:
    done = _serve(str(policy), "--api-key", "short", cwd=tmp_path)
    assert done.returncode == 2 and "16-512 characters" in done.stderr
    assert "short" not in done.stderr.replace("16-512", "")  # the key is not echoed
    done = _serve(str(policy), "--executor", "nonesuch", cwd=tmp_path)
    assert done.returncode == 2 and "no executor named 'nonesuch'" in done.stderr
    assert "Traceback" not in done.stderr


def test_original_readme_serve_and_curl(policy: Path, tmp_path: Path) -> None:
    """``aegis serve policy.yaml --port 8000`` then the README's curl (no keys: loopback)."""
    port = free_port()
    proc = ServerProcess(
        [str(policy), "--database", f"sqlite:///{tmp_path / 'a.db'}"], port, str(tmp_path / "log")
    )
    try:
        proc.wait_ready()
        r = httpx.post(
            proc.url + "/api/v1/evaluate", json={"action_type": "delete", "target": "db"}
        )
        assert r.json()["risk_level"] == "CRITICAL"
        assert r.json()["approval"] == "block" and r.json()["is_allowed"] is False
        # without an executor, /execute authorises and expects a report
        out = httpx.post(
            proc.url + "/api/v1/execute", json={"action_type": "read", "target": "crm"}
        ).json()
        assert out["status"] == "authorized"
        done = httpx.post(proc.url + out["outcome_url"], json={"status": "success"})
        assert done.status_code == 200
    finally:
        proc.stop()
    log = (tmp_path / "log").read_text()
    assert "no API keys: listening on loopback only" in log
