"""Fixtures shared by the approval tests.

``url`` runs a test once on a SQLite file and once on PostgreSQL (marked ``postgres``, so the
core suite skips it and ``nox -s postgres`` runs it): the request and answer rows are written
by SQL that differs per dialect, so each behaviour is checked on both stores.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An audit database URL: a fresh SQLite file, or the test PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
    else:
        yield request.getfixturevalue("pg_url")


@pytest.fixture
def request_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """An ``auto`` approval keeps a request row of its own (``AEGIS_FOLD_APPROVALS=0``), as
    every approval did before ``approval.folded``: for the tests of those rows."""
    monkeypatch.setenv("AEGIS_FOLD_APPROVALS", "0")
