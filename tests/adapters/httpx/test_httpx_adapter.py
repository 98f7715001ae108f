"""HttpxExecutor against a real HTTP server on 127.0.0.1 (stdlib ``http.server`` in a thread).

The server records every request it receives: "nothing was sent" is asserted on that record,
and every outcome on the row in the real SQLite audit store.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aegis.adapters.httpx_adapter import HttpxExecutor

from aegis import Action, ApprovalDecision, Policy, ResultStatus, Runtime
from aegis.runtime.approval.handlers import AutoApprovalHandler, CallbackApprovalHandler
from plugin_helpers import read_audit

POLICY = """
version: "1"
defaults: { risk_level: medium, approval: approve }
rules:
  - name: reads
    match: { type: "get" }
    risk_level: low
    approval: auto
  - name: writes
    match: { type: "post", target: "/users*" }
    risk_level: medium
    approval: auto
  - name: no_deletes
    match: { type: "delete*" }
    risk_level: critical
    approval: block
"""

# The original README's httpx snippet, character for character.
README_SNIPPET = """\
from aegis.adapters.httpx_adapter import HttpxExecutor

executor = HttpxExecutor(base_url="https://api.example.com",
default_headers={"Authorization": "Bearer ..."})
runtime = Runtime(executor=executor, policy=Policy.from_yaml("policy.yaml"))
# Action types map to HTTP methods: get, post, put, patch, delete
plan = runtime.plan([Action("get", "/users"), Action("delete", "/users/1")])
"""


class Server:
    """A tiny API: records requests; ``/slow`` sleeps, ``/missing`` is 404, ``/moved`` 302."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                server.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": json.loads(body) if body else None,
                    }
                )
                if self.path.startswith("/api/slow"):
                    time.sleep(1.0)
                if self.path.startswith("/api/missing"):
                    self._send(404, b"no such user: 42", "text/plain")
                elif self.path.startswith("/api/moved"):
                    self.send_response(302)
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self._send(200, json.dumps({"ok": True}).encode(), "application/json")

            def _send(self, status: int, payload: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    with Server() as s:
        yield s


@pytest.fixture
def policy() -> Policy:
    return Policy.from_yaml_string(POLICY, source="policy.yaml")


def executor_for(server: Server, **kw: Any) -> HttpxExecutor:
    kw.setdefault("default_headers", {"Authorization": "Bearer t0ken"})
    return HttpxExecutor(base_url=f"{server.url}/api", **kw)


async def run(
    server: Server, policy: Policy, audit_url: str, action: Action, **kw: Any
) -> tuple[Any, list[Any]]:
    executor = kw.pop("executor", None) or executor_for(server)
    kw.setdefault("approval_handler", AutoApprovalHandler())
    async with Runtime(executor=executor, policy=policy, audit=audit_url, **kw) as rt:
        result = await rt.run_one(action)
    return result, read_audit(audit_url)


def test_readme_snippet_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "policy.yaml").write_text(POLICY)
    namespace: dict[str, Any] = {"Action": Action, "Policy": Policy, "Runtime": Runtime}
    exec(README_SNIPPET, namespace)
    get, delete = namespace["plan"].steps
    assert get.decision.is_allowed and not get.decision.requires_approval
    assert not delete.decision.is_allowed and delete.decision.matched_rule == "no_deletes"
    assert namespace["executor"].base_url.host == "api.example.com"


async def test_allowed_get_is_sent_with_query_and_headers_and_audited(
    server: Server, policy: Policy, audit_url: str
) -> None:
    result, rows = await run(
        server,
        policy,
        audit_url,
        Action("get", "/users", params={"active": 1, "headers": {"X-Trace": "t1"}}),
        agent_id="crm-bot",
        session_id="s-42",
    )
    assert result.ok and result.data["status_code"] == 200 and result.data["body"] == {"ok": True}
    (req,) = server.requests
    assert req["method"] == "GET" and req["path"] == "/api/users?active=1"
    assert req["headers"]["authorization"] == "Bearer t0ken"
    assert req["headers"]["x-trace"] == "t1"
    (row,) = rows
    assert (row.result, row.action_type, row.target) == ("success", "get", "/users")
    assert (row.agent_id, row.session_id) == ("crm-bot", "s-42")


async def test_post_puts_loose_params_in_the_json_body(
    server: Server, policy: Policy, audit_url: str
) -> None:
    action = Action("POST", "/users", params={"name": "Ann", "query": {"dry": "no"}})
    result, _ = await run(server, policy, audit_url, action)
    assert result.ok
    (req,) = server.requests
    assert req["method"] == "POST" and req["path"] == "/api/users?dry=no"
    assert req["body"] == {"name": "Ann"}


async def test_explicit_json_body(server: Server, policy: Policy, audit_url: str) -> None:
    action = Action("post", "/users", params={"json": [1, 2]})
    result, _ = await run(server, policy, audit_url, action)
    assert result.ok and server.requests[0]["body"] == [1, 2]


async def test_blocked_delete_never_reaches_the_server(
    server: Server, policy: Policy, audit_url: str
) -> None:
    result, rows = await run(server, policy, audit_url, Action("delete", "/users/1"))
    assert result.status is ResultStatus.BLOCKED
    assert server.requests == []
    assert [r.result for r in rows] == ["blocked"]
    assert "no_deletes" in result.explain()


async def test_denied_approval_never_reaches_the_server_and_says_why(
    server: Server, policy: Policy, audit_url: str
) -> None:
    handler = CallbackApprovalHandler(lambda a, d: ApprovalDecision.deny("ann", "not on Friday"))
    result, rows = await run(
        server, policy, audit_url, Action("put", "/users/1"), approval_handler=handler
    )
    assert result.status is ResultStatus.DENIED and "not on Friday" in (result.reason or "")
    assert server.requests == []
    assert [(r.result, r.decision) for r in rows] == [("denied", "denied")]


async def test_non_2xx_is_failed_with_status_and_body_excerpt(
    server: Server, policy: Policy, audit_url: str
) -> None:
    result, rows = await run(server, policy, audit_url, Action("get", "/missing"))
    assert result.status is ResultStatus.FAILED
    assert result.error == "HTTP 404 Not Found: no such user: 42"
    assert (rows[0].result, rows[0].error) == ("failed", result.error)


async def test_redirects_are_not_followed(server: Server, policy: Policy, audit_url: str) -> None:
    result, _ = await run(server, policy, audit_url, Action("get", "/moved"))
    assert result.status is ResultStatus.FAILED and (result.error or "").startswith("HTTP 302")
    assert len(server.requests) == 1


async def test_timeout_is_failed_and_audited(
    server: Server, policy: Policy, audit_url: str
) -> None:
    executor = executor_for(server, timeout=0.2)
    result, rows = await run(server, policy, audit_url, Action("get", "/slow"), executor=executor)
    assert result.status is ResultStatus.FAILED and "no answer within 0.2 s" in (result.error or "")
    assert rows[0].result == "failed"


async def test_connection_error_is_failed(policy: Policy, audit_url: str) -> None:
    executor = HttpxExecutor(base_url="http://127.0.0.1:1/api", timeout=2)
    async with Runtime(executor=executor, policy=policy, audit=audit_url) as rt:
        result = await rt.run_one(Action("get", "/users"))
    assert result.status is ResultStatus.FAILED and "ConnectError" in (result.error or "")


@pytest.mark.parametrize(
    "target",
    ["http://127.0.0.1:9/x", "//evil.example/x", "/users/../admin", "/users/%2e%2e/admin"],
)
async def test_targets_that_leave_the_api_are_refused_before_sending(
    server: Server, policy: Policy, audit_url: str, target: str
) -> None:
    other = Server()  # the place an absolute target would reach: it must stay silent
    with other:
        result, rows = await run(server, policy, audit_url, Action("get", target))
    assert result.status is ResultStatus.FAILED and result.executed
    assert server.requests == [] and other.requests == []
    assert rows[0].result == "failed" and "target" in (rows[0].error or "")


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (Action("purge", "/users"), "not an HTTP method"),
        (Action("get", "/users", params={"headers": {"authorization": "x"}}), "cannot be replaced"),
        (Action("get", "/users", params={"query": "ann"}), "must be a mapping"),
        (Action("post", "/users", params={"json": {}, "name": "x"}), "either"),
    ],
)
async def test_actions_without_a_sound_request_fail_before_sending(
    server: Server, audit_url: str, action: Action, message: str
) -> None:
    allow_all = Policy.from_dict({"version": "1", "defaults": {"approval": "auto"}})
    result, rows = await run(server, allow_all, audit_url, action)
    assert result.status is ResultStatus.FAILED and message in (result.error or "")
    assert server.requests == [] and rows[0].result == "failed"


def test_registered_through_the_entry_point() -> None:
    from aegis import plugins

    registration = plugins.get_registry().get("executors", "httpx")
    assert registration is not None and registration.obj is HttpxExecutor


async def test_the_runtimes_time_limit_leaves_the_calling_task_alone(
    server: Server, policy: Policy, audit_url: str
) -> None:
    """httpx runs on anyio, whose cancel scopes cancel the task they were entered in. The
    runtime's limit must cut the request short without any of that reaching the caller."""
    executor = executor_for(server, timeout=30)
    async with Runtime(
        executor=executor, policy=policy, audit=audit_url, execution_timeout=0.2
    ) as rt:
        slow = await rt.run_one(Action("get", "/slow"))
        await asyncio.sleep(0.5)  # a stray cancellation aimed at this task would land here
        fine = await rt.run_one(Action("get", "/users"))
    assert slow.status is ResultStatus.FAILED and "timed out" in (slow.error or "")
    assert fine.status is ResultStatus.SUCCESS
    assert [r.result for r in read_audit(audit_url)] == ["failed", "success"]
