"""Two ``aegis serve`` processes on one real PostgreSQL, and waits that change hands.

A replica stopped gracefully (SIGTERM) hands its waiting execution over: the caller's
long-poll answers "poll again" at once, another replica adopts the same request, runs the
action once after approval, and the audit holds one record for it (not a refusal beside it).
A request reopened after an edit is resumed for the edited action by whoever adopts it.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from server_exec import ran
from server_helpers import bearer, until

pytestmark = pytest.mark.postgres

BULK = {"action_type": "bulk_update", "target": "crm", "params": {"count": 500}}


def _adopted(client: httpx.Client, rid: str, pid: int) -> bool:
    req = client.get(f"/api/v1/approvals/{rid}", headers=bearer("ops")).json()
    return bool(req["state"] == "pending" and f"pid {pid} " not in req["owner"])


def test_sigterm_hands_the_wait_over_and_it_runs_once_elsewhere(replicas) -> None:
    start, record = replicas
    a, b = start("a"), start("b")
    with httpx.Client(base_url=a.url, headers=bearer("dev"), timeout=30) as ca:
        pending = ca.post("/api/v1/execute", json=BULK).json()
    rid, status_url = pending["request_id"], pending["status_url"]

    def long_poll() -> httpx.Response:
        return httpx.get(a.url + status_url, params={"wait": 55}, headers=bearer("dev"), timeout=70)

    with ThreadPoolExecutor(1) as pool:
        polled = pool.submit(long_poll)
        time.sleep(1.0)  # the long-poll is in flight
        assert not polled.done()
        a.stop()  # SIGTERM, as an orchestrator stops a replica
        # The poll is answered by the drain, long before its 55 s are up (without the drain,
        # uvicorn would hold the stop until the poll ran out, then the wait would be refused).
        answer = polled.result(timeout=40)
    assert answer.status_code == 202, answer.text
    assert (answer.json()["status"], answer.json()["request_id"]) == ("pending_approval", rid)
    assert answer.headers["retry-after"] == "1"
    with httpx.Client(base_url=b.url, timeout=70) as cb:
        assert until(lambda: _adopted(cb, rid, a.proc.pid))
        assert cb.post(f"/api/v1/approvals/{rid}/approve", headers=bearer("ops")).status_code == 200
        done = cb.get(status_url, params={"wait": 30}, headers=bearer("dev"))
        assert done.status_code == 200, done.text
        assert (done.json()["status"], done.json()["approver"]) == ("success", "key:ops")
        records = cb.get("/api/v1/audit", headers=bearer("dev")).json()["records"]
        assert cb.get("/api/v1/audit/verify", headers=bearer("dev")).json()["ok"] is True
    assert [(r["action_type"], r["result"]) for r in records] == [("bulk_update", "success")]
    assert [r["pid"] for r in ran(record)] == [b.proc.pid]


def test_a_request_reopened_after_an_edit_is_resumed_for_the_edited_action(replicas) -> None:
    start, record = replicas
    a, b = start("a"), start("b")
    wire = {"action_type": "wire", "target": "bank", "params": {"amount": 10, "to": "acct-9"}}
    with httpx.Client(base_url=a.url, headers=bearer("dev"), timeout=30) as ca:
        first = ca.post("/api/v1/execute", json=wire).json()
    status_url = first["status_url"]
    with httpx.Client(base_url=b.url, timeout=70) as cb:
        edit = {"reason": "send more", "edits": {"amount": 5000}}
        url = f"/api/v1/approvals/{first['request_id']}/approve"
        assert cb.post(url, json=edit, headers=bearer("ops")).status_code == 200

        def reopened() -> list[dict]:
            found = cb.get("/api/v1/approvals", headers=bearer("ops")).json()
            return [r for r in found if r["id"] != first["request_id"]]

        assert until(lambda: bool(reopened()))  # wire_large: root must approve the edit
        (second,) = reopened()
        assert second["params"]["amount"] == 5000
        a.stop(kill=True)  # its replica dies while the reopened request waits
        assert until(lambda: _adopted(cb, second["id"], a.proc.pid))
        ok = cb.post(f"/api/v1/approvals/{second['id']}/approve", headers=bearer("root"))
        assert ok.status_code == 200
        done = cb.get(status_url, params={"wait": 30}, headers=bearer("dev"))
        assert done.status_code == 200, done.text
        assert (done.json()["status"], done.json()["approver"]) == ("success", "key:root")
        records = cb.get("/api/v1/audit", headers=bearer("dev")).json()["records"]
    runs = ran(record)
    assert [(r["type"], r["params"]["amount"], r["pid"]) for r in runs] == [
        ("wire", 5000, b.proc.pid)
    ]
    # As on one replica: the action as submitted is closed as edited, and the edit runs as
    # the next record, linked to it.
    closed, edit = sorted(records, key=lambda r: r["id"])
    assert (closed["action_type"], closed["result"], closed["params"]["amount"]) == (
        "wire",
        "skipped",
        10,
    )
    assert "edited by key:root before approval" in closed["reason"]
    assert (edit["result"], edit["params"]["amount"], edit["parent_id"]) == (
        "success",
        5000,
        closed["id"],
    )


def test_a_silent_replica_whose_wait_was_adopted_records_nothing(replicas, pg_url: str) -> None:
    """Replica A falls silent (SIGSTOP) for longer than ``STALE_AFTER`` as seen from another
    host (its rows are made to look so), so B adopts its wait and runs the action once it is
    approved. When A wakes, its wait sees the approval too: it finds the row is B's and stops,
    recording nothing, where it used to add a refusal beside B's record."""
    from sqlalchemy import create_engine, text

    start, record = replicas
    a, b = start("a"), start("b")
    with httpx.Client(base_url=a.url, headers=bearer("dev"), timeout=30) as ca:
        pending = ca.post("/api/v1/execute", json=BULK).json()
    rid, status_url = pending["request_id"], pending["status_url"]
    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        elsewhere = "other-host:4242:123/boot/ns"
        engine = create_engine(pg_url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE aegis_server_execution SET owner = :o, heartbeat_at = 0 WHERE id = :i"
                ),
                {"o": elsewhere, "i": pending["execution_id"]},
            )
            conn.execute(
                text("UPDATE aegis_approval_request SET owner_started = :o WHERE id = :r"),
                {"o": elsewhere, "r": rid},
            )
        engine.dispose()
        with httpx.Client(base_url=b.url, timeout=70) as cb:
            assert until(lambda: _adopted(cb, rid, a.proc.pid))
            ok = cb.post(f"/api/v1/approvals/{rid}/approve", headers=bearer("ops"))
            assert ok.status_code == 200
            done = cb.get(status_url, params={"wait": 30}, headers=bearer("dev"))
            assert (done.status_code, done.json()["status"]) == (200, "success"), done.text
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    with httpx.Client(base_url=a.url, headers=bearer("dev"), timeout=70) as ca:
        time.sleep(2.0)  # A's wait polls every 0.2 s: time to see the answer and act on it
        seen = ca.get(status_url, params={"wait": 30})  # A answers from B's row now
        records = ca.get("/api/v1/audit").json()["records"]
    assert (seen.status_code, seen.json()["status"]) == (200, "success"), seen.text
    assert [(r["action_type"], r["result"]) for r in records] == [("bulk_update", "success")]
    assert [r["pid"] for r in ran(record)] == [b.proc.pid]
