"""The policy over HTTP on a real SQLite audit database: read, replace (admin only; invalid
YAML is 422 with line:col and the old policy stays), simulate and the playground, versions,
diff and rollback — and the CLI's rollback seen by a running app."""

from __future__ import annotations

from litestar.testing import TestClient
from server_helpers import POLICY, bearer

from aegis.runtime.audit import AuditStore
from aegis.runtime.policy_versions import PolicyHistory

READS_BLOCKED = POLICY.replace(
    "    risk_level: low\n    approval: auto", "    risk_level: low\n    approval: block"
)
READ = {"action_type": "read", "target": "crm"}


def _decide(c: TestClient, who: str = "dev") -> str:
    r = c.post("/api/v1/evaluate", json=READ, headers=bearer(who))
    assert r.status_code == 200, r.text
    return str(r.json()["approval"])


def test_get_policy_names_version_one_seeded_from_the_file(client) -> None:
    c, _ = client
    body = c.get("/api/v1/policy", headers=bearer("dev")).json()
    assert body["version"] == 1
    assert body["source"] == "file" and body["author"].startswith("file:")
    assert body["yaml"] == POLICY
    assert [r["name"] for r in body["policy"]["rules"]][:2] == ["read_safe", "bulk_needs_ops"]


def test_put_needs_admin_and_takes_effect_at_once(client) -> None:
    c, _ = client
    for who in ("dev", "bot"):  # keys without admin
        r = c.put("/api/v1/policy", json={"yaml": READS_BLOCKED}, headers=bearer(who))
        assert r.status_code == 403, (who, r.text)
    assert _decide(c) == "auto"
    r = c.put(
        "/api/v1/policy", json={"yaml": READS_BLOCKED, "note": "freeze"}, headers=bearer("root")
    )
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["in_force"], r.json()["changed"]) == (2, 2, True)
    assert r.json()["author"] == "key:root"
    assert _decide(c) == "block"
    # The same text again stores nothing.
    again = c.put("/api/v1/policy", json={"yaml": READS_BLOCKED}, headers=bearer("root"))
    assert (again.json()["version"], again.json()["changed"]) == (2, False)


def test_invalid_yaml_is_422_with_line_col_and_the_old_policy_stays(client) -> None:
    c, _ = client
    bad = POLICY.replace("approval: auto", "approval: sometimes")
    r = c.put("/api/v1/policy", json={"yaml": bad}, headers=bearer("root"))
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid policy"
    [issue] = body["detail"]
    assert issue.startswith("yaml:7:15:") and "sometimes" in issue
    broken = c.put("/api/v1/policy", json={"yaml": "rules: [\n"}, headers=bearer("root"))
    assert broken.status_code == 422 and broken.json()["detail"][0].startswith("yaml:")
    assert _decide(c) == "auto"
    assert c.get("/api/v1/policy/versions", headers=bearer("dev")).json()["in_force"] == 1


def test_anonymous_caller_of_a_keyless_server_cannot_change_the_policy(make_app) -> None:
    app, _ = make_app(keys=())
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert c.get("/api/v1/policy").status_code == 200
        assert c.put("/api/v1/policy", json={"yaml": READS_BLOCKED}).status_code == 403
        assert c.post("/api/v1/policy/rollback/1").status_code == 403


def test_simulate_with_the_policy_in_force_and_with_pasted_yaml(client) -> None:
    c, _ = client
    actions = [READ, {"action_type": "delete", "target": "db"}]
    now = c.post("/api/v1/policy/simulate", json={"actions": actions}, headers=bearer("dev"))
    assert now.status_code == 200
    assert [d["approval"] for d in now.json()["decisions"]] == ["auto", "block"]
    assert now.json()["version"] == 1
    pasted = c.post(
        "/api/v1/policy/simulate",
        json={"actions": actions, "yaml": READS_BLOCKED},
        headers=bearer("dev"),
    )
    assert [d["approval"] for d in pasted.json()["decisions"]] == ["block", "block"]
    assert pasted.json()["stored"] is False and pasted.json()["version"] is None
    # Nothing was stored and nothing changed.
    assert _decide(c) == "auto"
    assert len(c.get("/api/v1/policy/versions", headers=bearer("dev")).json()["versions"]) == 1
    bad = c.post(
        "/api/v1/policy/simulate",
        json={"actions": actions, "yaml": "defaults: {approval: maybe}\n"},
        headers=bearer("dev"),
    )
    assert bad.status_code == 422 and bad.json()["detail"][0].startswith("yaml:1:")


def test_versions_diff_and_rollback(client) -> None:
    c, _ = client
    root = bearer("root")
    c.put("/api/v1/policy", json={"yaml": READS_BLOCKED, "note": "freeze"}, headers=root)
    listed = c.get("/api/v1/policy/versions", headers=bearer("dev")).json()
    assert [(v["version"], v["note"]) for v in listed["versions"]] == [(2, "freeze"), (1, None)]
    one = c.get("/api/v1/policy/versions/1", headers=bearer("dev")).json()
    assert one["yaml"] == POLICY
    assert c.get("/api/v1/policy/versions/9", headers=bearer("dev")).status_code == 404
    d = c.get("/api/v1/policy/diff", params={"from": 1, "to": 2}, headers=bearer("dev")).json()
    assert "-    approval: auto" in d["text"] and "+    approval: block" in d["text"]
    kinds = {(k["old"], k["new"]) for k in d["sampled"]["changes"]}
    assert ("auto", "block") in kinds
    assert c.post("/api/v1/policy/rollback/1", headers=bearer("dev")).status_code == 403
    assert c.post("/api/v1/policy/rollback/7", headers=root).status_code == 404
    back = c.post("/api/v1/policy/rollback/1", json={"note": "too strict"}, headers=root)
    assert back.status_code == 200
    assert (back.json()["version"], back.json()["rolled_back_to"]) == (3, 1)
    assert _decide(c) == "auto"
    # Decisions record the fingerprint of the version they were made under.
    c.post("/api/v1/execute", json=READ, headers=bearer("dev"))
    [rec] = c.get("/api/v1/audit", headers=bearer("dev")).json()["records"]
    assert rec["policy_fingerprint"] == back.json()["fingerprint"]


def test_a_rollback_from_the_cli_reaches_a_running_app(client, db_url: str) -> None:
    c, _ = client
    c.put("/api/v1/policy", json={"yaml": READS_BLOCKED}, headers=bearer("root"))
    assert _decide(c) == "block"
    # Another process on the same database (what `aegis policy rollback 1` does).
    PolicyHistory(AuditStore(db_url)).rollback(1, author="cli:alice")
    import time

    deadline = time.monotonic() + 10
    while _decide(c) != "auto" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _decide(c) == "auto"
    body = c.get("/api/v1/policy", headers=bearer("dev")).json()
    assert (body["version"], body["author"]) == (3, "cli:alice")
