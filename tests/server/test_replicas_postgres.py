"""Two ``aegis serve`` processes on one real PostgreSQL: an action pending on replica A is
approved through replica B and runs on A, once; both write one verified chain; any replica
answers any execution's status URL; a replica killed while its request is pending leaves it to
another, which runs it exactly once after approval, or lets it expire — never twice."""

from __future__ import annotations

import time

import httpx
import pytest
from server_exec import ran
from server_helpers import POLICY, bearer, until

pytestmark = pytest.mark.postgres

BULK = {"action_type": "bulk_update", "target": "crm", "params": {"count": 500}}


def test_pending_on_a_approved_on_b_runs_once_on_a(replicas) -> None:
    start, record = replicas
    a, b = start("a"), start("b")
    with httpx.Client(base_url=a.url, headers=bearer("dev"), timeout=70) as ca:
        pending = ca.post("/api/v1/execute", json=BULK)
        assert pending.status_code == 202
        rid = pending.json()["request_id"]
        with httpx.Client(base_url=b.url, headers=bearer("ops"), timeout=30) as cb:
            listed = cb.get("/api/v1/approvals").json()
            assert [r["id"] for r in listed] == [rid]
            assert cb.post(f"/api/v1/approvals/{rid}/approve", json={}).status_code == 200
            done = ca.get(pending.json()["status_url"], params={"wait": 30})
            assert done.status_code == 200
            assert (done.json()["status"], done.json()["approver"]) == ("success", "key:ops")
            # both replicas write: an auto action through each
            for c in (ca, cb):
                r = c.post("/api/v1/execute", json={"action_type": "read", "target": "crm"})
                assert r.json()["status"] == "success"
            assert cb.get("/api/v1/audit/verify").json()["ok"] is True
            records = cb.get("/api/v1/audit").json()["records"]
    assert [r["result"] for r in records] == ["success", "success", "success"]
    runs = ran(record)
    assert [r["type"] for r in runs] == ["bulk_update", "read", "read"]
    assert runs[0]["pid"] == a.proc.pid  # the waiting replica ran it
    assert {runs[1]["pid"], runs[2]["pid"]} == {a.proc.pid, b.proc.pid}


def test_the_status_url_is_answered_by_any_replica(replicas) -> None:
    start, record = replicas
    a, b = start("a"), start("b")
    with httpx.Client(base_url=a.url, headers=bearer("dev"), timeout=70) as ca:
        pending = ca.post("/api/v1/execute", json=BULK).json()
    status_url, rid = pending["status_url"], pending["request_id"]
    with httpx.Client(base_url=b.url, timeout=70) as cb:
        seen = cb.get(status_url, headers=bearer("dev"))
        assert seen.status_code == 202
        assert (seen.json()["status"], seen.json()["request_id"]) == ("pending_approval", rid)
        assert cb.post(f"/api/v1/approvals/{rid}/approve", headers=bearer("ops")).status_code == 200
        done = cb.get(status_url, params={"wait": 30}, headers=bearer("dev"))
    assert done.status_code == 200
    assert (done.json()["status"], done.json()["approver"]) == ("success", "key:ops")
    assert [r["pid"] for r in ran(record)] == [a.proc.pid]


def test_a_replica_killed_while_pending_is_picked_up_and_runs_once(replicas) -> None:
    start, record = replicas
    a, b = start("a"), start("b")
    with httpx.Client(base_url=a.url, headers=bearer("dev"), timeout=30) as ca:
        pending = ca.post("/api/v1/execute", json=BULK).json()
    rid, status_url = pending["request_id"], pending["status_url"]
    a.stop(kill=True)  # SIGKILL: the waiter is gone without a word
    a2 = start("a-restarted")
    with httpx.Client(base_url=b.url, timeout=30) as cb:
        # Picked up, not abandoned: the request is still waiting for its answer.
        def adopted() -> bool:
            req = cb.get(f"/api/v1/approvals/{rid}", headers=bearer("ops")).json()
            return bool(req["state"] == "pending" and str(a.proc.pid) not in req["owner"])

        assert until(adopted)
        assert ran(record) == []
        assert cb.post(f"/api/v1/approvals/{rid}/approve", headers=bearer("ops")).status_code == 200
    with httpx.Client(base_url=a2.url, headers=bearer("dev"), timeout=70) as c2:
        done = c2.get(status_url, params={"wait": 30})
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "success"
        time.sleep(1.5)  # time for a second run, if there were one
        runs = ran(record)
        assert [r["type"] for r in runs] == ["bulk_update"]
        assert runs[0]["pid"] in (a2.proc.pid, b.proc.pid)
        records = c2.get("/api/v1/audit").json()["records"]
        assert [(r["action_type"], r["result"]) for r in records] == [("bulk_update", "success")]
        assert c2.get("/api/v1/audit/verify").json()["ok"] is True


def test_a_picked_up_request_nobody_answers_expires_and_never_runs(replicas) -> None:
    start, record = replicas
    a, b = start("a"), start("b")
    quick = {"action_type": "quick_transfer", "target": "bank", "params": {"amount": 5}}
    with httpx.Client(base_url=a.url, headers=bearer("dev"), timeout=30) as ca:
        pending = ca.post("/api/v1/execute", json=quick).json()
    a.stop(kill=True)
    with httpx.Client(base_url=b.url, headers=bearer("dev"), timeout=70) as cb:
        done = cb.get(pending["status_url"], params={"wait": 30})
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "denied"
        assert "timed out" in done.json()["reason"]
        req = cb.get(f"/api/v1/approvals/{pending['request_id']}").json()
        assert req["state"] == "expired"
        late = cb.post(f"/api/v1/approvals/{pending['request_id']}/approve", headers=bearer("ops"))
        assert late.status_code == 409
    time.sleep(1.0)
    assert ran(record) == []


def test_a_policy_put_on_one_replica_is_served_by_the_other(replicas) -> None:
    start, _ = replicas
    a, b = start("a"), start("b")
    read = {"action_type": "read", "target": "crm"}
    blocked = POLICY.replace(
        "risk_level: low\n    approval: auto", "risk_level: low\n    approval: block"
    )
    with (
        httpx.Client(base_url=a.url, timeout=30) as ca,
        httpx.Client(base_url=b.url, timeout=30) as cb,
    ):
        assert (
            cb.post("/api/v1/evaluate", json=read, headers=bearer("dev")).json()["approval"]
            == "auto"
        )
        put = ca.put("/api/v1/policy", json={"yaml": blocked}, headers=bearer("root"))
        assert put.status_code == 200 and put.json()["version"] == 2
        deadline = time.monotonic() + 10
        seen = "auto"
        while seen != "block" and time.monotonic() < deadline:
            seen = cb.post("/api/v1/evaluate", json=read, headers=bearer("dev")).json()["approval"]
            time.sleep(0.05)
        assert seen == "block"
        assert cb.get("/api/v1/policy", headers=bearer("dev")).json()["version"] == 2
        back = cb.post("/api/v1/policy/rollback/1", headers=bearer("root"))
        assert back.json()["version"] == 3
        deadline = time.monotonic() + 10
        while seen != "auto" and time.monotonic() < deadline:
            seen = ca.post("/api/v1/evaluate", json=read, headers=bearer("dev")).json()["approval"]
            time.sleep(0.05)
        assert seen == "auto"
        history = ca.get("/api/v1/policy/versions", headers=bearer("dev")).json()["versions"]
        assert [(v["version"], v["author"]) for v in history] == [
            (3, "key:root"),
            (2, "key:root"),
            (1, f"file:{history[-1]['author'][5:]}"),
        ]
    # A replica restarted with the same file keeps version 3 (the file does not win again).
    a.stop()
    a2 = start("a2")
    with httpx.Client(base_url=a2.url, timeout=30) as c2:
        assert c2.get("/api/v1/policy", headers=bearer("dev")).json()["version"] == 3
