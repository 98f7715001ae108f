"""/execute through an executor: auto runs, block never runs, approve waits for an answer
given over the approvals API; every case checked on what the executor really ran."""

from __future__ import annotations

from litestar.testing import TestClient
from server_helpers import bearer

BULK = {"action_type": "bulk_update", "target": "crm", "params": {"count": 500}}


def _records(c: TestClient, **query: str) -> list[dict]:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return c.get(f"/api/v1/audit?limit=1000&{q}", headers=bearer("root")).json()["records"]


def test_auto_rule_runs_and_is_audited_once(client) -> None:
    c, ran = client
    r = c.post(
        "/api/v1/execute", json={"action_type": "read", "target": "crm"}, headers=bearer("dev")
    )
    assert r.status_code == 200
    body = r.json()
    assert (body["status"], body["executed"], body["data"]) == ("success", True, {"ok": True})
    assert [a.type for a in ran.ran] == ["read"]
    assert [rec["id"] for rec in _records(c)] == [body["audit_id"]]


def test_blocked_rule_never_runs(client) -> None:
    c, ran = client
    r = c.post(
        "/api/v1/execute", json={"action_type": "delete", "target": "db"}, headers=bearer("dev")
    )
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["executed"]) == ("blocked", False)
    assert ran.ran == []
    assert [rec["result"] for rec in _records(c)] == ["blocked"]


def _pending(c: TestClient, body: dict) -> dict:
    r = c.post("/api/v1/execute", json=body, headers=bearer("dev"))
    assert r.status_code == 202, r.text
    pending = r.json()
    assert pending["status"] == "pending_approval"
    assert pending["status_url"] == f"/api/v1/executions/{pending['execution_id']}"
    return pending


def test_approval_through_the_api_runs_the_action(client) -> None:
    c, ran = client
    pending = _pending(c, BULK)
    assert ran.ran == []
    listed = c.get("/api/v1/approvals", headers=bearer("ops")).json()
    assert [x["id"] for x in listed] == [pending["request_id"]]
    r = c.post(
        f"/api/v1/approvals/{pending['request_id']}/approve",
        json={"reason": "looks fine"},
        headers=bearer("ops"),
    )
    assert r.status_code == 200 and r.json()["accepted"] is True
    done = c.get(pending["status_url"] + "?wait=10", headers=bearer("dev"))
    assert done.status_code == 200
    assert (done.json()["status"], done.json()["approver"]) == ("success", "key:ops")
    assert [a.type for a in ran.ran] == ["bulk_update"]
    (rec,) = _records(c)
    assert (rec["decision"], rec["result"], rec["approver"]) == ("approved", "success", "key:ops")


def test_denial_through_the_api_never_runs(client) -> None:
    c, ran = client
    pending = _pending(c, BULK)
    r = c.post(
        f"/api/v1/approvals/{pending['request_id']}/deny",
        json={"reason": "no"},
        headers=bearer("ops"),
    )
    assert r.status_code == 200
    done = c.get(pending["status_url"] + "?wait=10", headers=bearer("dev")).json()
    assert done["status"] == "denied" and done["executed"] is False
    assert ran.ran == []
    assert [rec["result"] for rec in _records(c)] == ["denied"]


def test_a_key_outside_the_allow_list_is_refused_and_nothing_runs(client) -> None:
    c, ran = client
    pending = _pending(c, BULK)  # the rule allows key:ops and web:ops only
    r = c.post(
        f"/api/v1/approvals/{pending['request_id']}/approve", json={}, headers=bearer("root")
    )
    assert r.status_code == 409
    assert r.json()["error"] == "answer refused"
    still = c.get(pending["status_url"], headers=bearer("dev"))
    assert still.status_code == 202
    assert ran.ran == []
    shown = c.get(f"/api/v1/approvals/{pending['request_id']}", headers=bearer("ops")).json()
    assert shown["state"] == "pending"
    assert [a["accepted"] for a in shown["answers"]] == [False]


def test_an_edit_is_re_evaluated_and_the_edited_action_runs(client) -> None:
    c, ran = client
    pending = _pending(c, BULK)
    r = c.post(
        f"/api/v1/approvals/{pending['request_id']}/approve",
        json={"edits": {"count": 120}, "reason": "smaller batch"},
        headers=bearer("ops"),
    )
    assert r.status_code == 200
    done = c.get(pending["status_url"] + "?wait=10", headers=bearer("dev")).json()
    assert done["status"] == "success"
    assert [dict(a.params) for a in ran.ran] == [{"count": 120}]


def test_an_edit_the_policy_now_blocks_does_not_run(client) -> None:
    c, ran = client
    pending = _pending(c, BULK)
    # count 50 no longer matches the approval rule; the defaults block it
    c.post(
        f"/api/v1/approvals/{pending['request_id']}/approve",
        json={"edits": {"count": 50}},
        headers=bearer("ops"),
    )
    done = c.get(pending["status_url"] + "?wait=10", headers=bearer("dev")).json()
    assert (done["status"], done["executed"]) == ("blocked", False)
    assert ran.ran == []


def test_approving_twice_is_refused(client) -> None:
    c, _ = client
    pending = _pending(c, {"action_type": "write", "target": "crm_prod"})
    url = f"/api/v1/approvals/{pending['request_id']}/approve"
    assert c.post(url, json={}, headers=bearer("root")).status_code == 200
    assert c.post(url, json={}, headers=bearer("ops")).status_code == 409


def test_unknown_request_and_execution_are_404(client) -> None:
    c, _ = client
    r = c.post("/api/v1/approvals/nope/approve", json={}, headers=bearer("ops"))
    assert r.status_code == 404 and set(r.json()) == {"error", "detail"}
    assert c.get("/api/v1/executions/nope", headers=bearer("dev")).status_code == 404


def test_another_keys_execution_is_not_visible(client) -> None:
    c, _ = client
    pending = _pending(c, BULK)
    assert c.get(pending["status_url"], headers=bearer("bot")).status_code == 404


def test_audit_cursor_pagination_and_filters(client) -> None:
    c, _ = client
    for i in range(5):
        c.post(
            "/api/v1/execute",
            json={"action_type": f"read_{i}", "target": "crm"},
            headers=bearer("dev"),
        )
    c.post("/api/v1/execute", json={"action_type": "delete", "target": "db"}, headers=bearer("dev"))
    seen, cursor = [], None
    while True:
        q = "limit=2" + (f"&cursor={cursor}" if cursor is not None else "")
        page = c.get(f"/api/v1/audit?{q}", headers=bearer("dev")).json()
        seen += [r["id"] for r in page["records"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == 6
    blocked = c.get("/api/v1/audit?result=blocked", headers=bearer("dev")).json()["records"]
    assert [r["action_type"] for r in blocked] == ["delete"]
    globbed = c.get("/api/v1/audit?action_type=read_*", headers=bearer("dev")).json()["records"]
    assert len(globbed) == 5
    assert c.get("/api/v1/audit?since=yesterday-ish", headers=bearer("dev")).status_code == 400
    # found by schemathesis: an id past 64 bits overflowed the SQLite driver (a 500)
    huge = 2**70
    assert c.get(f"/api/v1/audit?cursor={huge}", headers=bearer("dev")).status_code == 400
    r = c.post(f"/api/v1/audit/{huge}/outcome", json={"status": "success"}, headers=bearer("root"))
    assert r.status_code in (400, 404)
    assert c.get("/api/v1/audit/verify", headers=bearer("dev")).json()["ok"] is True
    stats = c.get("/api/v1/stats", headers=bearer("dev")).json()
    by_rule = {s["rule"]: s for s in stats}
    assert by_rule["read_safe"]["total"] == 5
    assert by_rule["no_deletes"]["by_result"] == {"blocked": 1}
