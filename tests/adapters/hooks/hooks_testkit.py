"""Helpers shared by the hook tests: the commands, a policy, the audit rows, recorded payloads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from aegis.runtime.audit import AuditStore

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
AEGIS = str(BIN / "aegis")
AEGIS_HOOK = str(BIN / "aegis-hook")


def payloads(name: str) -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads((HERE / "payloads" / f"{name}.json").read_text())
    return data


HOOK_POLICY = """\
version: "1"
defaults: {risk_level: medium, approval: block}
rules:
  - name: no_rm_rf
    match: {type: bash, target: "rm -rf*"}
    risk_level: critical
    approval: block
  - name: shell
    match: {type: bash}
    risk_level: low
    approval: auto
  - name: reads
    match: {type: read}
    risk_level: low
    approval: auto
  - name: env_files
    match: {type: edit, target: "*.env"}
    risk_level: high
    approval: approve
  - name: source_edits
    match: {type: edit, target: "*.py"}
    risk_level: low
    approval: auto
  - name: writes
    match: {type: write}
    risk_level: high
    approval: approve
  - name: crm_deletes
    match: {type: "delete_*", target: crm}
    risk_level: critical
    approval: block
"""


def run(command: list[str], payload: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return subprocess.run(
        command, input=data, capture_output=True, text=True, timeout=120, **kwargs
    )


def records(db: str) -> list[Any]:
    store = AuditStore(db)
    try:
        return store.query(limit=None)
    finally:
        store.close_sync()
