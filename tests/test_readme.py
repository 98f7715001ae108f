"""The README is tested: its Python blocks run, and its CLI and exit-code tables match the code.

A ``yaml`` block preceded by ``<!-- readme-test: write NAME -->`` is written to NAME in the
block's working directory first. Each ``python`` block runs as its own script in a fresh
directory, with no terminal (stdin closed), so the default CLI approval handler denies, as it
must without a human.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from aegis.cli.errors import ExitCode

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
WRITE = re.compile(r"<!-- readme-test: write (\S+) -->\s*$")


def _blocks() -> list[tuple[str, str, str | None]]:
    """(language, code, file to write) for every fenced block, in order."""
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        write = WRITE.search(before)
        blocks.append((match.group(1), match.group(2), write.group(1) if write else None))
    return blocks


PYTHON_BLOCKS = [code for lang, code, _ in _blocks() if lang == "python"]
FILES = {name: code for _, code, name in _blocks() if name}


def _aegis(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aegis.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _run_block(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    for name, content in FILES.items():
        (cwd / name).write_text(content)
    script = cwd / "readme_block.py"
    script.write_text(code)
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def test_readme_has_the_blocks_this_test_relies_on() -> None:
    assert len(PYTHON_BLOCKS) >= 3
    assert "policy.yaml" in FILES


@pytest.mark.parametrize(
    "code", PYTHON_BLOCKS, ids=[f"block{i}" for i in range(len(PYTHON_BLOCKS))]
)
def test_python_block_runs(code: str, tmp_path: Path) -> None:
    done = _run_block(code, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_quick_start_leaves_an_audit_trail_the_cli_shows_and_verifies(tmp_path: Path) -> None:
    quick_start = next(code for code in PYTHON_BLOCKS if "runtime.execute(plan)" in code)
    done = _run_block(quick_start, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "executing read -> crm" in done.stdout
    assert "executing delete" not in done.stdout  # blocked by the policy
    assert "executing bulk_update" not in done.stdout  # no terminal: the CLI handler denies

    audit = _aegis("audit", "--format", "json", cwd=tmp_path)
    assert audit.returncode == 0, audit.stderr
    for action_type in ("read", "bulk_update", "delete"):
        assert f'"{action_type}"' in audit.stdout
    verify = _aegis("audit", "verify", cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _first_table(section: str) -> list[list[str]]:
    """Rows of the first Markdown table in ``section``, without its header."""
    rows = []
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows and not line.startswith("|"):
            break
    return rows[1:]


def _table_after(marker: str) -> list[list[str]]:
    return _first_table(README.read_text(encoding="utf-8").split(marker, 1)[1])


def test_every_cli_command_in_the_readme_exists(tmp_path: Path) -> None:
    commands = [re.match(r"`aegis ([a-z]+(?: verify)?)", row[0]) for row in _table_after("## CLI")]
    names = [m.group(1) for m in commands if m]
    assert "validate" in names and "audit verify" in names
    for name in names:
        done = _aegis(*name.split(), "--help", cwd=tmp_path)
        assert done.returncode == 0, f"aegis {name} --help: {done.stderr}"


def test_exit_code_table_matches_the_cli() -> None:
    documented = {int(row[0]) for row in _table_after("Exit codes:")}
    assert documented == {int(code) for code in ExitCode}
