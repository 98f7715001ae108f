"""No container engine here: the Dockerfile and compose.yaml are checked by reading them, and
the command they run is run for real (its options must exist and be accepted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2] / "aegis-server"
AEGIS = str(Path(sys.executable).parent / "aegis")


def _entrypoint() -> list[str]:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    (line,) = [ln for ln in lines if ln.startswith("ENTRYPOINT")]
    return list(json.loads(line.removeprefix("ENTRYPOINT").strip()))


def test_dockerfile_is_slim_non_root_and_runs_aegis_serve() -> None:
    text = (ROOT / "Dockerfile").read_text()
    froms = [ln for ln in text.splitlines() if ln.startswith("FROM ")]
    assert froms == ["FROM python:3.11-slim"]
    users = [ln.split()[1] for ln in text.splitlines() if ln.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert _entrypoint()[:2] == ["aegis", "serve"]


def test_entrypoint_options_are_real(tmp_path: Path) -> None:
    """The image's command, as run here: with no keys it must refuse 0.0.0.0 (exit 2)."""
    (tmp_path / "policy.yaml").write_text('version: "1"\nrules: []\n')
    cmd = [AEGIS if a == "aegis" else a for a in _entrypoint()]
    cmd = [str(tmp_path / "policy.yaml") if a == "/app/policy.yaml" else a for a in cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert "refusing to listen on 0.0.0.0 without API keys" in done.stderr


def test_compose_runs_two_replicas_on_postgres_with_keys() -> None:
    doc = YAML(typ="safe").load((ROOT / "compose.yaml").read_text())
    services = doc["services"]
    assert services["db"]["image"].startswith("postgres:")
    for name in ("aegis-a", "aegis-b"):
        svc = services[name]
        env = svc["environment"]
        assert env["AEGIS_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert "AEGIS_API_KEYS" in env and "AEGIS_SESSION_SECRET" in env
        assert svc["build"]["dockerfile"] == "aegis-server/Dockerfile"
        assert all(p.startswith("127.0.0.1:") for p in svc["ports"])
