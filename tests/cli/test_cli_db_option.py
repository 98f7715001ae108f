"""The ``--db`` option lives in ``aegis.cli.db_option``, shared by every command group that
reads the store: a group imports it from there, never from another group, and the old import
path (``aegis.cli.audit_cmds``) still gives the same objects."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_the_old_import_path_still_works() -> None:
    from aegis.cli import audit_cmds, db_option

    assert audit_cmds.DbOption is db_option.DbOption
    assert audit_cmds.open_store is db_option.open_store
    assert audit_cmds.store_url is db_option.store_url


@pytest.mark.parametrize(
    "group",
    [
        "evidence_cmds",
        "approvals_cmds",
        "shadow_cmds",
        "policy_versions_cmds",
    ],
)
def test_a_command_group_does_not_load_the_audit_group(group: str) -> None:
    """Fresh interpreter: importing a group that takes --db loads no other group's module."""
    code = f"import sys, aegis.cli.{group}; sys.exit('aegis.cli.audit_cmds' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr or f"aegis.cli.{group} imported aegis.cli.audit_cmds"
