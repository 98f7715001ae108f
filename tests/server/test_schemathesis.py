"""schemathesis against the server's own OpenAPI, on a real ``aegis serve``, with every check:
no input it can generate makes the server answer 5xx, and every answer (status, content type,
headers, body) is one the document describes. What JSON Schema cannot say about a valid request
is allowed, operation by operation and with its reason, in schemathesis.toml beside this file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from server_helpers import ADMIN, POLICY, ServerProcess, bearer, free_port

ST = str(Path(sys.executable).parent / "schemathesis")
CONFIG = str(Path(__file__).with_name("schemathesis.toml"))


def test_every_answer_is_described_by_the_schema(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    args = [str(tmp_path / "policy.yaml"), "--database", f"sqlite:///{tmp_path / 'a.db'}"]
    args += ["--executor", "server_exec:FileRecorder", "--executor-option"]
    args += [f"path={tmp_path / 'ran.jsonl'}", "--api-key", ADMIN, "--outcome-timeout", "5"]
    proc = ServerProcess(args, free_port(), str(tmp_path / "server.log"))
    try:
        proc.wait_ready()
        auth = bearer("root")["Authorization"]
        done = subprocess.run(
            [
                *(ST, "--config-file", CONFIG, "run", f"{proc.url}/schema/openapi.json"),
                *("-H", f"Authorization: {auth}", "--checks", "all"),
                *("--max-examples", "10", "--seed", "1"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,  # it writes .hypothesis/ and .schemathesis/ here
        )
    finally:
        proc.stop()
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Internal Server Error" not in (tmp_path / "server.log").read_text()
