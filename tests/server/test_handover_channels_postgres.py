"""SIGTERM hands over waits on every channel, not only ``queue``: a chat-like channel that
answers later, and a one-shot handler. Either way the stopping replica records nothing and
the caller is told to poll again (never "denied" when nobody denied); another replica adopts
the same request, notifies its channels again (or asks its handler again), and runs the
action once after the answer."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from server_channels import channel_plugin
from server_exec import ran
from server_helpers import bearer, until

pytestmark = pytest.mark.postgres

BULK = {"action_type": "bulk_update", "target": "crm", "params": {"count": 500}}
WRITE = {"action_type": "write", "target": "crm", "params": {"name": "Ada"}}


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "PYTHONPATH": str(channel_plugin(tmp_path / "plugin")),
        "AEGIS_TEST_TICKETS": str(tmp_path / "tickets.jsonl"),
        "AEGIS_TEST_GATE": str(tmp_path / "gate"),
    }


def _tickets(tmp_path: Path) -> list[dict]:
    path = tmp_path / "tickets.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines]


def _owner(client: httpx.Client, rid: str) -> str:
    return str(client.get(f"/api/v1/approvals/{rid}", headers=bearer("ops")).json()["owner"])


def test_a_wait_on_a_channel_that_answers_later_is_handed_over(replicas, tmp_path) -> None:
    start, record = replicas
    env = _env(tmp_path)
    a = start("a", "--approval", "ticket", env=env)
    b = start("b", "--approval", "ticket", env=env)
    with httpx.Client(base_url=a.url, headers=bearer("dev"), timeout=30) as ca:
        pending = ca.post("/api/v1/execute", json=BULK)
    assert pending.status_code == 202, pending.text  # a human answers later: 202 at once
    rid, status_url = pending.json()["request_id"], pending.json()["status_url"]
    assert until(lambda: [t["pid"] for t in _tickets(tmp_path)] == [a.proc.pid])

    def long_poll() -> httpx.Response:
        return httpx.get(a.url + status_url, params={"wait": 55}, headers=bearer("dev"), timeout=70)

    with ThreadPoolExecutor(1) as pool:
        polled = pool.submit(long_poll)
        time.sleep(1.0)
        a.stop()  # SIGTERM
        answer = polled.result(timeout=40)
    assert answer.status_code == 202, answer.text
    assert (answer.json()["status"], answer.json()["request_id"]) == ("pending_approval", rid)
    with httpx.Client(base_url=b.url, timeout=70) as cb:
        # B adopts the same request and posts it on its channel again.
        assert until(lambda: [t["pid"] for t in _tickets(tmp_path)] == [a.proc.pid, b.proc.pid])
        assert {t["request"] for t in _tickets(tmp_path)} == {rid}
        assert f"pid {a.proc.pid} " not in _owner(cb, rid)
        ok = cb.post(f"/api/v1/approvals/{rid}/approve", headers=bearer("ops"))
        assert ok.status_code == 200, ok.text
        done = cb.get(status_url, params={"wait": 30}, headers=bearer("dev"))
        assert done.status_code == 200, done.text
        assert (done.json()["status"], done.json()["approver"]) == ("success", "key:ops")
        records = cb.get("/api/v1/audit", headers=bearer("dev")).json()["records"]
        assert cb.get("/api/v1/audit/verify", headers=bearer("dev")).json()["ok"] is True
    assert [(r["action_type"], r["result"]) for r in records] == [("bulk_update", "success")]
    assert [r["pid"] for r in ran(record)] == [b.proc.pid]


def test_a_wait_on_a_one_shot_handler_is_handed_over(replicas, tmp_path) -> None:
    """The handler answers in the call (no 202 while it may still answer within the call's
    first 25 s); a SIGTERM meanwhile answers the call "poll again", and the adopter asks its
    own handler, whose approval runs the action there, once."""
    start, record = replicas
    env = _env(tmp_path)
    a = start("a", "--approval", "gatekeeper", env=env)
    b = start("b", "--approval", "gatekeeper", env=env)

    def execute() -> httpx.Response:
        return httpx.post(a.url + "/api/v1/execute", json=WRITE, headers=bearer("dev"), timeout=70)

    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(execute)
        with httpx.Client(base_url=b.url, headers=bearer("ops"), timeout=30) as cb:
            assert until(lambda: bool(cb.get("/api/v1/approvals").json()))
            (request,) = cb.get("/api/v1/approvals").json()
        time.sleep(0.5)
        assert not call.done()  # the handler may still answer: the call waits for it
        a.stop()  # SIGTERM
        answer = call.result(timeout=40)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert (body["status"], body["request_id"]) == ("pending_approval", request["id"])
    with httpx.Client(base_url=b.url, timeout=70) as cb:
        assert until(lambda: f"pid {a.proc.pid} " not in _owner(cb, request["id"]))
        assert ran(record) == []
        (tmp_path / "gate").touch()  # B's handler approves now
        done = cb.get(body["status_url"], params={"wait": 30}, headers=bearer("dev"))
        assert done.status_code == 200, done.text
        assert (done.json()["status"], done.json()["approver"]) == (
            "success",
            f"gatekeeper:{b.proc.pid}",
        )
        records = cb.get("/api/v1/audit", headers=bearer("dev")).json()["records"]
    assert [(r["action_type"], r["result"]) for r in records] == [("write", "success")]
    assert [r["pid"] for r in ran(record)] == [b.proc.pid]
