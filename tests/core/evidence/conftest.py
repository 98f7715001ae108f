from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

# The audit tests' builders (real value objects, raw SQL for tampering) serve here too.
sys.path.insert(0, str(Path(__file__).parent.parent / "audit"))


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit.db'}"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    from aegis.runtime.audit.keys import generate_keypair

    private, public = tmp_path / "keys" / "aegis.key", tmp_path / "keys" / "aegis.pub"
    generate_keypair(private, public)
    return private, public


@pytest.fixture
def signer(keys: tuple[Path, Path]) -> Any:
    from aegis.runtime.audit.keys import load_private_key

    return load_private_key(keys[0])


@pytest.fixture
def public(keys: tuple[Path, Path]) -> Any:
    from aegis.runtime.audit.keys import load_public_key

    return load_public_key(keys[1])
