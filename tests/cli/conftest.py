"""Helpers for CLI tests: run ``aegis`` in-process (fast, captures output) or as the installed
console script (real pipes, real exit codes)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_helpers import AEGIS_SCRIPT, CliRun, RunCli

from aegis.cli import main


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> RunCli:
    """``run_cli("validate", "p.yaml")`` → CliRun(code, out, err), in this process."""

    def run(*argv: str) -> CliRun:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return CliRun(int(code), captured.out, captured.err)

    return run


@pytest.fixture
def run_script() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed ``aegis`` script with stdout/stderr as pipes (so: not a terminal)."""

    def run(
        *argv: str, cwd: Path, timeout: float = 60, **env: str
    ) -> subprocess.CompletedProcess[str]:
        dropped = ("FORCE_COLOR", "AEGIS_AUDIT_URL")
        full_env = {k: v for k, v in os.environ.items() if k not in dropped}
        full_env.update(env)
        return subprocess.run(
            [str(AEGIS_SCRIPT), *argv],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    return run


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test runs in its own empty directory with no audit URL or colour forced."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AEGIS_AUDIT_URL", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("AEGIS_DEBUG", raising=False)
    yield tmp_path
