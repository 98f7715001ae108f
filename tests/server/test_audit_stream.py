"""GET /api/v1/audit/stream: a live tail as server-sent events, each final record once."""

from __future__ import annotations

import json

from server_helpers import bearer


def test_stream_sends_final_records_in_order(client) -> None:
    c, _ = client
    for body in ({"action_type": "read", "target": "a"}, {"action_type": "delete", "target": "b"}):
        c.post("/api/v1/execute", json=body, headers=bearer("dev"))
    with c.stream("GET", "/api/v1/audit/stream?cursor=0&limit=2", headers=bearer("dev")) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    data = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
    assert [(d["target"], d["result"]) for d in data] == [("a", "success"), ("b", "blocked")]


def test_stream_needs_audit_read(client) -> None:
    c, _ = client
    assert c.get("/api/v1/audit/stream?limit=1", headers=bearer("bot")).status_code == 403
