"""A clean copy of what the root build reads, and the tools the install tests drive.

The copy holds the root's own files and every distribution directory, nothing else: stray build
output, an editable install or a venv in the checkout cannot make an install test pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The root's own files and the directories of its distributions (core, plugins, server).
NEEDED = (
    "pyproject.toml",
    "hatch_build.py",
    "README.md",
    "LICENSE",
    "aegis-core",
    "aegis-adapters",
    "aegis-approvals",
    "aegis-server",
)
JUNK = shutil.ignore_patterns(
    "__pycache__", "*.egg-info", ".nox", ".venv", "build", "dist", ".pytest_cache", ".mypy_cache"
)


def clean_copy(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in NEEDED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=JUNK)
        elif source.exists():
            shutil.copy2(source, dest / name)
    return dest


def root_extras(root: Path = ROOT) -> dict[str, list[str]]:
    """The extras as published: ``[tool.hatch.metadata.hooks.custom.extras]``."""
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    extras: dict[str, list[str]] = config["tool"]["hatch"]["metadata"]["hooks"]["custom"]["extras"]
    return extras


def uv() -> str:
    """The uv that ``nox -s root_install`` passes in (or the one on PATH); CI fails without it."""
    found = os.environ.get("AEGIS_UV") or shutil.which("uv")
    if not found:
        message = "uv not found (nox -s root_install passes it as AEGIS_UV)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def run(
    args: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", **(env or {})}
    return subprocess.run(
        args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )
