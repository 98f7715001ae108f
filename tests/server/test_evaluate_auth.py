"""/evaluate as in the original README, and the API keys in front of it."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient
from server_helpers import bearer

from aegis.server.auth import AuthError, parse_key, parse_keys


def test_original_readme_curl_with_a_key(client) -> None:
    c, _ = client
    r = c.post(
        "/api/v1/evaluate", json={"action_type": "delete", "target": "db"}, headers=bearer("dev")
    )
    assert r.status_code == 200
    body = r.json()
    assert body["risk_level"] == "CRITICAL"
    assert body["approval"] == "block"
    assert body["is_allowed"] is False
    assert body["matched_rule"] == "no_deletes"


def test_evaluate_a_list(client) -> None:
    c, _ = client
    r = c.post(
        "/api/v1/evaluate",
        json=[
            {"action_type": "read", "target": "crm"},
            {"action_type": "bulk_update", "target": "crm", "params": {"count": 500}},
        ],
        headers=bearer("dev"),
    )
    assert r.status_code == 200
    assert [d["approval"] for d in r.json()] == ["auto", "approve"]


def test_no_key_is_401_with_json_error(client) -> None:
    c, _ = client
    r = c.post("/api/v1/evaluate", json={"action_type": "read", "target": "crm"})
    assert r.status_code == 401
    assert set(r.json()) == {"error", "detail"}
    assert r.headers["www-authenticate"] == "Bearer"


def test_wrong_key_is_401(client) -> None:
    c, _ = client
    r = c.post(
        "/api/v1/evaluate",
        json={"action_type": "read", "target": "crm"},
        headers={"Authorization": "Bearer not-a-key-at-all-000000"},
    )
    assert r.status_code == 401


def test_scope_is_enforced(client) -> None:
    c, _ = client
    # bot may execute but not evaluate; dev may not approve
    r = c.post(
        "/api/v1/evaluate", json={"action_type": "read", "target": "x"}, headers=bearer("bot")
    )
    assert r.status_code == 403
    r = c.post("/api/v1/approvals/abc/approve", json={}, headers=bearer("dev"))
    assert r.status_code == 403


def test_invalid_body_is_400_naming_the_field(client) -> None:
    c, _ = client
    r = c.post("/api/v1/evaluate", json={"target": "db"}, headers=bearer("dev"))
    assert r.status_code == 400
    assert r.json()["error"] == "invalid request"
    assert "action_type" in r.json()["detail"]
    r = c.post("/api/v1/evaluate", content=b"{not json", headers=bearer("dev"))
    assert r.status_code == 400
    r = c.post(
        "/api/v1/evaluate",
        json={"action_type": "read", "target": "x", "surprise": 1},
        headers=bearer("dev"),
    )
    assert r.status_code == 400


def test_body_size_limit(make_app) -> None:
    from aegis.server.context import ServerConfig

    app, _ = make_app(config=ServerConfig(max_body_bytes=2000))
    with TestClient(app) as c:
        big = {"action_type": "read", "target": "x", "params": {"blob": "a" * 5000}}
        r = c.post("/api/v1/evaluate", json=big, headers=bearer("dev"))
    assert r.status_code == 413
    assert "error" in r.json()


def test_rate_limit_per_key(make_app) -> None:
    from aegis.server.context import ServerConfig

    app, _ = make_app(config=ServerConfig(rate_per_key=0.001))
    with TestClient(app) as c:
        body = {"action_type": "read", "target": "x"}
        codes = [
            c.post("/api/v1/evaluate", json=body, headers=bearer("dev")).status_code
            for _ in range(3)
        ]
        other = c.post("/api/v1/evaluate", json=body, headers=bearer("root")).status_code
    assert codes[0] == 200 and codes[-1] == 429
    assert other == 200


def test_without_keys_loopback_callers_are_anonymous_and_never_admin(make_app) -> None:
    app, _ = make_app(keys=())
    with TestClient(app) as c:
        r = c.post("/api/v1/evaluate", json={"action_type": "delete", "target": "db"})
        assert r.status_code == 200
        assert r.json()["is_allowed"] is False
    from aegis.server.auth import ANONYMOUS

    assert not ANONYMOUS.allows("admin")


def test_key_specs() -> None:
    k = parse_key("ci=abcdefghijklmnop0123:evaluate+execute@agent-1")
    assert (k.name, k.agent, sorted(k.scopes)) == ("ci", "agent-1", ["evaluate", "execute"])
    assert "abcdefghijklmnop0123" not in repr(k)
    assert parse_key("abcdefghijklmnop0123").allows("admin")
    with pytest.raises(AuthError, match="unknown scope 'root'"):
        parse_key("abcdefghijklmnop0123:root")
    with pytest.raises(AuthError, match="16-512"):
        parse_key("short")
    with pytest.raises(AuthError, match="given twice"):
        parse_keys(["a=abcdefghijklmnop0123", "a=abcdefghijklmnop0124"])


def test_bound_agent_overrides_the_body(client) -> None:
    c, _ = client
    r = c.post(
        "/api/v1/execute",
        json={"action_type": "read", "target": "crm", "agent_id": "someone-else"},
        headers=bearer("bot"),
    )
    assert r.status_code == 200
    audit_id = r.json()["audit_id"]
    rec = c.get(f"/api/v1/audit?cursor={audit_id - 1}&limit=1", headers=bearer("root")).json()
    assert rec["records"][0]["agent_id"] == "agent-007"


def test_openapi_is_served_without_cdn(client) -> None:
    c, _ = client
    r = c.get("/schema")
    assert r.status_code == 200
    assert "<script" not in r.text
    spec = c.get("/schema/openapi.json").json()
    assert "/api/v1/evaluate" in spec["paths"]
    assert "/api/v1/approvals/{request_id}/approve" in spec["paths"]


def test_health_and_ready(client) -> None:
    c, _ = client
    assert c.get("/health").json() == {"status": "ok"}
    assert c.get("/ready").json()["status"] == "ready"


def test_the_key_is_checked_before_the_body_is_read(client) -> None:
    """A caller without a key learns nothing about what a valid body looks like: 401, not a
    400 naming the field it got wrong."""
    c, _ = client
    for path in ("/api/v1/evaluate", "/api/v1/execute", "/api/v1/policy/simulate"):
        r = c.post(path, json={"nonsense": True})
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"] == "unauthorized"
