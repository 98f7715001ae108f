"""Tool pinning through the proxy: a rug pull after trust is quarantined until a human accepts."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from aegis.adapters.mcp.pins import QUARANTINED, TRUSTED, PinStore, ToolShape
from mcp_testkit import AEGIS, UPSTREAM, proxy_session, upstream_env

from aegis.runtime.audit import AuditStore


def text(result: Any) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


def records(db_url: str) -> list[Any]:
    store = AuditStore(db_url)
    try:
        return store.query(limit=None)
    finally:
        store.close_sync()


async def names(session: Any) -> set[str]:
    return {t.name for t in (await session.list_tools()).tools}


async def until_hidden(session: Any, name: str) -> set[str]:
    """The proxy re-lists after the upstream's list_changed; give it a moment."""
    for _ in range(100):
        listed = await names(session)
        if name not in listed:
            return listed
        await asyncio.sleep(0.05)
    return listed


async def test_changed_description_is_quarantined_until_accepted(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    args = ("--policy", str(policy_file), "--db", db_url, "--", sys.executable, UPSTREAM)
    async with proxy_session(*args, env=upstream_env(upstream_log)) as session:
        assert "read_file" in await names(session)
        assert (await session.call_tool("rug_pull", {})).is_error is False
        listed = await until_hidden(session, "read_file")
        assert "read_file" not in listed and "echo" in listed
        refused = await session.call_tool("read_file", {"path": "/etc/passwd"})
        assert refused.is_error is True
        assert "quarantined" in text(refused) and "description changed" in text(refused)
        assert not [c for c in upstream_log() if c["tool"] == "read_file"]

        shown = subprocess.run(
            [AEGIS, "mcp", "pins", "--db", db_url], capture_output=True, text=True, timeout=60
        )
        assert shown.returncode == 0, shown.stderr
        [line] = [ln for ln in shown.stdout.splitlines() if "read_file" in ln]
        assert QUARANTINED in line

        accepted = subprocess.run(
            [AEGIS, "mcp", "pins", "accept", "upstream", "read_file", "--db", db_url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert accepted.returncode == 0, accepted.stderr
        assert "read_file" in await names(session)
        ran = await session.call_tool("read_file", {"path": "/x"})
        assert ran.is_error is False, text(ran)

    kinds = [
        (r.action_type, r.result) for r in records(db_url) if r.action_type.startswith("mcp_pin")
    ]
    assert ("mcp_pin_quarantined", "blocked") in kinds
    assert ("mcp_pin_accepted", "success") in kinds
    [accept] = [r for r in records(db_url) if r.action_type == "mcp_pin_accepted"]
    assert accept.decision == "approved" and accept.params["tool"] == "read_file"


async def test_tool_added_after_list_changed_is_quarantined(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    args = ("--policy", str(policy_file), "--db", db_url, "--", sys.executable, UPSTREAM)
    async with proxy_session(*args, env=upstream_env(upstream_log)) as session:
        await session.call_tool("add_tool", {})
        await asyncio.sleep(0.5)
        assert "exfiltrate" not in await names(session)
        refused = await session.call_tool("exfiltrate", {"path": "/x"})
    assert refused.is_error is True and "new tool" in text(refused)
    assert not [c for c in upstream_log() if c["tool"] == "exfiltrate"]


async def test_approve_mode_lists_the_tool_but_a_human_must_allow_each_call(
    policy_file: Path, db_url: str, upstream_log: Any
) -> None:
    args = ("--policy", str(policy_file), "--db", db_url, "--quarantine", "approve")
    async with proxy_session(
        *args, "--", sys.executable, UPSTREAM, env=upstream_env(upstream_log)
    ) as session:
        await session.call_tool("rug_pull", {})
        await asyncio.sleep(0.5)
        assert "read_file" in await names(session)
        refused = await session.call_tool("read_file", {"path": "/x"})
    assert refused.is_error is True
    assert "Not approved" in text(refused)
    [row] = [r for r in records(db_url) if r.action_type == "read_file"]
    assert (row.approval, row.matched_rule, row.result) == (
        "approve",
        "mcp-proxy:quarantine",
        "denied",
    )


def test_rename_with_the_same_schema_is_quarantined(tmp_path: Path) -> None:
    store = PinStore(f"sqlite:///{tmp_path / 'pins.db'}")
    schema = {"type": "object", "properties": {"path": {"type": "string"}}}
    first, _ = store.reconcile("fs", [ToolShape("read_file", "Read.", schema)])
    assert first == {"read_file": TRUSTED}
    status, events = store.reconcile("fs", [ToolShape("read_file_v2", "Read.", schema)])
    assert status == {"read_file_v2": QUARANTINED}
    assert [(e.kind, e.reason) for e in events] == [("quarantined", "renamed from 'read_file'")]
    status, events = store.reconcile("fs", [ToolShape("read_file", "Read.", schema)])
    assert status == {"read_file": TRUSTED} and events == []
    store.close()


def test_schema_change_and_restore(tmp_path: Path) -> None:
    store = PinStore(f"sqlite:///{tmp_path / 'pins.db'}")
    store.reconcile("fs", [ToolShape("run", "Run.", {"type": "object"})])
    wider = {"type": "object", "properties": {"shell": {"type": "string"}}}
    status, events = store.reconcile("fs", [ToolShape("run", "Run.", wider)])
    assert status == {"run": QUARANTINED}
    assert events[0].reason == "input schema changed since it was pinned"
    status, events = store.reconcile("fs", [ToolShape("run", "Run.", {"type": "object"})])
    assert status == {"run": TRUSTED} and [e.kind for e in events] == ["restored"]
    store.close()


def test_a_pin_made_before_annotations_were_pinned_takes_them_once(tmp_path: Path) -> None:
    """Pins made before a tool's title, annotations... were digested hold their tools (no
    quarantine of every annotated tool at the upgrade): the first listing after it pins the
    rest of the definition as it is. After that a change of it is a rug pull like any other,
    and so is adding annotations to a tool pinned without any."""
    import sqlalchemy

    url = f"sqlite:///{tmp_path / 'pins.db'}"
    store = PinStore(url)
    schema = {"type": "object"}
    plain = ToolShape("lookup", "Look up.", schema)
    store.reconcile("crm", [plain, ToolShape("other", "Other.", schema)])
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:  # as the version before pinned it: name, description, schema
        conn.execute(
            sqlalchemy.text(
                "UPDATE aegis_mcp_pins SET digest = :d, seen_digest = :d WHERE tool = 'lookup'"
            ),
            {"d": plain.legacy_digest},
        )
    engine.dispose()
    destructive = {"annotations": {"readOnlyHint": False, "destructiveHint": True}}
    shown = ToolShape("lookup", "Look up.", schema, destructive)
    status, events = store.reconcile("crm", [shown, ToolShape("other", "Other.", schema)])
    assert status == {"lookup": TRUSTED, "other": TRUSTED}
    assert [(e.kind, e.tool) for e in events] == [("repinned", "lookup")]
    assert store.get("crm", "lookup").digest == shown.digest
    assert store.reconcile("crm", [shown])[0] == {"lookup": TRUSTED}  # once only
    safe = {"annotations": {"readOnlyHint": True, "destructiveHint": False}}
    pulled = ToolShape("lookup", "Look up.", schema, safe)
    assert store.reconcile("crm", [pulled])[0] == {"lookup": QUARANTINED}
    added = ToolShape("other", "Other.", schema, safe)  # pinned with none; now it has some
    assert store.reconcile("crm", [added])[0] == {"other": QUARANTINED}
    store.close()
