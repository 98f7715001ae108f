"""The queue channel between two real processes: a waiting run_one and `aegis approvals`.

Both on SQLite and (``-m postgres``) on a real PostgreSQL server. Also: a waiter killed with
SIGKILL leaves its request ``abandoned`` once the store is reopened, and it never runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aegis.runtime.audit import AuditStore

HERE = Path(__file__).parent
AEGIS = Path(sys.executable).with_name("aegis")

#: Bounds on waiting for another process. Generous on purpose: on a loaded machine one
#: `aegis` start can take many seconds, and a bound only decides when a *broken* run gives up.
PATIENCE = 180.0
#: The waiter's approval window. None of these tests is about expiry: the window must not run
#: out while the test answers, however slow the machine (at 60 s it once did, under load).
WINDOW = 3600.0


def aegis(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AEGIS_AUDIT_URL": url}
    env.pop("FORCE_COLOR", None)
    return subprocess.run(
        [str(AEGIS), *args],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def start_waiter(url: str, out: Path, timeout: float = WINDOW) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "waiter.py"), url, str(out), str(timeout)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "waiting"
    return proc


def pending_id(url: str) -> str:
    """The waiter's request id (read in-process: each `aegis` start costs a second or two)."""
    store = AuditStore(url)
    deadline = time.monotonic() + PATIENCE
    try:
        while time.monotonic() < deadline:
            found = store.approvals.list(state="pending", limit=1)
            if found:
                return found[0].id
            time.sleep(0.05)  # a poll interval, not a guess at how long the waiter needs
    finally:
        store.close_sync()
    raise AssertionError(f"no pending request appeared in {PATIENCE:g} s")


def wait_for(proc: subprocess.Popen[str], seconds: float = PATIENCE) -> None:
    proc.wait(timeout=seconds)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    return url


def test_approve_from_another_process_with_an_edit(url: str, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    proc = start_waiter(url, out)
    try:
        rid = pending_id(url)
        listing = aegis("approvals", url=url)
        assert (
            listing.returncode == 0
            and rid[:8] in listing.stdout
            and "pay -> bank" in listing.stdout
        )
        shown = aegis("approvals", "show", rid[:10], url=url)
        assert shown.returncode == 0, shown.stderr
        assert "[REDACTED]" in shown.stdout and "sk-live" not in shown.stdout
        assert "any authenticated approver" in shown.stdout and "agent-7" in shown.stdout
        done = aegis(
            "approvals", "approve", rid[:8], "--set", "count=100", "--reason", "capped", url=url
        )
        assert done.returncode == 0, done.stderr
        wait_for(proc)
    finally:
        proc.kill()
    result = json.loads(out.read_text())
    assert result["status"] == "success" and result["params"]["count"] == 100
    assert [
        json.loads(line)["count"] for line in out.with_suffix(".ran").read_text().splitlines()
    ] == [100]
    again = aegis("approvals", "approve", rid, url=url)
    assert again.returncode == 1 and "already approved" in again.stderr
    unknown = aegis("approvals", "deny", "ffffffff", url=url)
    assert unknown.returncode == 2 and "no approval request" in unknown.stderr


def test_deny_reason_reaches_the_caller(url: str, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    proc = start_waiter(url, out)
    try:
        rid = pending_id(url)
        done = aegis("approvals", "deny", rid, "--reason", "wrong account", url=url)
        assert done.returncode == 0, done.stderr
        wait_for(proc)
    finally:
        proc.kill()
    result = json.loads(out.read_text())
    assert result["status"] == "denied" and result["reason"] == "denied: wrong account"
    assert not out.with_suffix(".ran").exists()


def test_sigkill_during_the_wait_leaves_an_abandoned_request_that_never_runs(
    sqlite_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "out.json"
    proc = start_waiter(sqlite_url, out)
    rid = pending_id(sqlite_url)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=PATIENCE)
    # An approval after the death changes nothing: the reaper runs when a store opens.
    store = AuditStore(sqlite_url)
    store.open_sync()
    try:
        req = store.approvals.get(rid)
        assert req.state == "abandoned" and "no longer running" in (req.outcome or "")
    finally:
        store.close_sync()
    late = aegis("approvals", "approve", rid, url=sqlite_url)
    assert late.returncode == 1 and "already abandoned" in late.stderr
    assert not out.with_suffix(".ran").exists()


def test_expire_command_reaps_a_dead_waiter(sqlite_url: str, tmp_path: Path) -> None:
    proc = start_waiter(sqlite_url, tmp_path / "out.json")
    rid = pending_id(sqlite_url)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=PATIENCE)
    reaped = aegis("approvals", "expire", url=sqlite_url)
    assert reaped.returncode == 0 and f"{rid[:8]}  abandoned" in reaped.stdout
