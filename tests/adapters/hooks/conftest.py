"""Fixtures: a hook policy file and an audit URL in the test's own directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from hooks_testkit import HOOK_POLICY


@pytest.fixture
def hook_policy(tmp_path: Path) -> Path:
    path = tmp_path / "hook-policy.yaml"
    path.write_text(HOOK_POLICY, encoding="utf-8")
    return path


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit.db'}"
