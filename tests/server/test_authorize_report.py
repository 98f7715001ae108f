"""/execute without an executor: authorise, the caller acts and reports; silence is recorded
as "outcome not reported", never as success."""

from __future__ import annotations

import time

from litestar.testing import TestClient
from server_helpers import bearer

READ = {"action_type": "read", "target": "crm"}


def _authorise(c: TestClient, body: dict = READ, key: str = "dev") -> dict:
    r = c.post("/api/v1/execute", json=body, headers=bearer(key))
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["status"], out["executed"]) == ("authorized", False)
    assert out["outcome_url"] == f"/api/v1/audit/{out['audit_id']}/outcome"
    return out


def _record(c: TestClient, audit_id: int) -> dict:
    page = c.get(f"/api/v1/audit?cursor={audit_id - 1}&limit=1", headers=bearer("root")).json()
    (rec,) = page["records"]
    assert rec["id"] == audit_id
    return rec


def test_authorise_then_report_success(make_app) -> None:
    app, ran = make_app(executor=False)
    with TestClient(app) as c:
        out = _authorise(c)
        assert _record(c, out["audit_id"])["result"] == "pending"
        r = c.post(
            out["outcome_url"],
            json={"status": "success", "duration_ms": 12.5},
            headers=bearer("dev"),
        )
        assert r.status_code == 200
        rec = _record(c, out["audit_id"])
        assert (rec["result"], rec["duration_ms"]) == ("success", 12.5)
        # a second report cannot rewrite it
        again = c.post(out["outcome_url"], json={"status": "failed"}, headers=bearer("dev"))
        assert again.status_code == 409
        assert _record(c, out["audit_id"])["result"] == "success"
        assert c.get("/api/v1/audit/verify", headers=bearer("root")).json()["ok"] is True
    assert ran.ran == []  # the server never acted itself


def test_blocked_is_final_and_awaits_no_report(make_app) -> None:
    app, _ = make_app(executor=False)
    with TestClient(app) as c:
        r = c.post(
            "/api/v1/execute", json={"action_type": "delete", "target": "db"}, headers=bearer("dev")
        )
        assert r.json()["status"] == "blocked"
        audit_id = r.json()["audit_id"]
        late = c.post(
            f"/api/v1/audit/{audit_id}/outcome", json={"status": "success"}, headers=bearer("dev")
        )
        assert late.status_code == 409
        assert _record(c, audit_id)["result"] == "blocked"


def test_only_the_authorised_key_may_report(make_app) -> None:
    app, _ = make_app(executor=False)
    with TestClient(app) as c:
        out = _authorise(c)
        r = c.post(out["outcome_url"], json={"status": "success"}, headers=bearer("bot"))
        assert r.status_code == 403
        assert _record(c, out["audit_id"])["result"] == "pending"


def test_a_running_execution_cannot_be_finished_by_a_report(client) -> None:
    """A pending row that is not an authorisation (say, another action mid-run) is not
    reportable: the report endpoint only finishes what it authorised."""
    c, _ = client
    pending = c.post(
        "/api/v1/execute",
        json={"action_type": "bulk_update", "target": "crm", "params": {"count": 500}},
        headers=bearer("dev"),
    ).json()
    assert pending["status"] == "pending_approval"
    r = c.post("/api/v1/audit/1/outcome", json={"status": "success"}, headers=bearer("root"))
    assert r.status_code == 409


def test_invalid_outcome_status_is_400(make_app) -> None:
    app, _ = make_app(executor=False)
    with TestClient(app) as c:
        out = _authorise(c)
        r = c.post(out["outcome_url"], json={"status": "pending"}, headers=bearer("dev"))
        assert r.status_code == 400
        assert _record(c, out["audit_id"])["result"] == "pending"


def test_unreported_outcome_is_closed_as_not_reported(make_app) -> None:
    from aegis.server.context import ServerConfig

    app, _ = make_app(executor=False, config=ServerConfig(outcome_timeout=0.2))
    with TestClient(app) as c:
        out = _authorise(c)
        deadline = time.monotonic() + 15
        while _record(c, out["audit_id"])["result"] == "pending" and time.monotonic() < deadline:
            time.sleep(0.2)
        rec = _record(c, out["audit_id"])
        assert (rec["result"], rec["error"]) == ("failed", "outcome not reported")
        late = c.post(out["outcome_url"], json={"status": "success"}, headers=bearer("dev"))
        assert late.status_code == 409
        assert _record(c, out["audit_id"])["result"] == "failed"


def test_approval_then_authorisation(make_app) -> None:
    app, _ = make_app(executor=False)
    with TestClient(app) as c:
        r = c.post(
            "/api/v1/execute",
            json={"action_type": "write", "target": "crm_prod"},
            headers=bearer("dev"),
        )
        assert r.status_code == 202
        pending = r.json()
        c.post(f"/api/v1/approvals/{pending['request_id']}/approve", json={}, headers=bearer("ops"))
        done = c.get(pending["status_url"] + "?wait=10", headers=bearer("dev")).json()
        assert (done["status"], done["approver"]) == ("authorized", "key:ops")
        assert _record(c, done["audit_id"])["decision"] == "approved"


def test_an_authorisation_nobody_will_be_owed_is_not_left_pending(make_app, db_url: str) -> None:
    """The pending record and the row saying who owes its outcome were two transactions: when
    the second failed, the record stayed pending for ever, with nobody to report it and no
    reaper to close it."""
    import sqlalchemy

    app, _ = make_app(executor=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        engine = sqlalchemy.create_engine(db_url)
        with engine.begin() as conn:  # the outcome row cannot be written now
            conn.execute(sqlalchemy.text("DROP TABLE aegis_server_outcomes"))
        engine.dispose()
        r = c.post("/api/v1/execute", json=READ, headers=bearer("dev"))
        assert r.json().get("status") != "authorized"
        records = c.get("/api/v1/audit?limit=50", headers=bearer("root")).json()["records"]
        assert [rec["result"] for rec in records if rec["result"] == "pending"] == []


def _fail_finishing(db_url: str, on: bool) -> None:
    """Make every write that finishes an audit record fail in the database itself (a full
    disk, a lost lock), or stop doing so."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(db_url)
    with engine.begin() as conn:
        if on:
            conn.execute(
                sqlalchemy.text(
                    "CREATE TRIGGER aegis_test_no_finish BEFORE UPDATE ON aegis_audit "
                    "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
                )
            )
        else:
            conn.execute(sqlalchemy.text("DROP TRIGGER aegis_test_no_finish"))
    engine.dispose()


def test_a_report_that_could_not_be_recorded_can_be_sent_again(make_app, db_url: str) -> None:
    """Who owes the outcome was forgotten in a transaction of its own before the outcome was
    written: when that write failed, the record stayed pending for ever, a second report was
    refused as "already closed", and the reaper had nothing left to close."""
    app, _ = make_app(executor=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        out = _authorise(c)
        _fail_finishing(db_url, True)
        r = c.post(out["outcome_url"], json={"status": "success"}, headers=bearer("dev"))
        assert r.status_code == 503, r.text
        assert "again" in r.json()["detail"]
        _fail_finishing(db_url, False)
        assert _record(c, out["audit_id"])["result"] == "pending"
        again = c.post(out["outcome_url"], json={"status": "success"}, headers=bearer("dev"))
        assert again.status_code == 200, again.text
        assert _record(c, out["audit_id"])["result"] == "success"
        assert c.get("/api/v1/audit/verify", headers=bearer("root")).json()["ok"] is True


def test_an_overdue_record_the_reaper_could_not_close_is_closed_later(
    make_app, db_url: str
) -> None:
    from aegis.server.context import ServerConfig

    app, _ = make_app(executor=False, config=ServerConfig(outcome_timeout=0.2))
    with TestClient(app, raise_server_exceptions=False) as c:
        out = _authorise(c)
        _fail_finishing(db_url, True)
        time.sleep(2.5)  # past the deadline: the reaper (every 1 s) tried and failed
        assert _record(c, out["audit_id"])["result"] == "pending"
        _fail_finishing(db_url, False)
        deadline = time.monotonic() + 15
        while _record(c, out["audit_id"])["result"] == "pending" and time.monotonic() < deadline:
            time.sleep(0.2)
        rec = _record(c, out["audit_id"])
        assert (rec["result"], rec["error"]) == ("failed", "outcome not reported")
