"""A hook that waits on a human leaves the trail ``Runtime.run_one`` leaves.

A real ``aegis hook daemon`` holds the ``PreToolUse`` call of a rule named with ``--wait``; a
second process answers it with the ``aegis approvals`` CLI, as a person would. Then the audit
must read as it reads for ``run_one``: the request points at the record of the call that runs
(``aegis approvals show``), that record names the request and seals its answers (``aegis
audit verify`` finds them covered), an approver's edit closes the submitted call's record as
edited and the edited call, decided again under the policy and recorded as it will run, is the
record ``PostToolUse`` completes. A refusal, a timeout or an edit that cannot run is a deny.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aegis_hook
import pytest
from aegis.adapters.hooks import mapping
from aegis.adapters.hooks.run import post_tool_use, pre_tool_use
from hooks_testkit import AEGIS, AEGIS_HOOK, HOOK_POLICY, payloads, records, run

from aegis import Policy, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.core.result import Result, ResultStatus
from aegis.runtime.audit import AuditStore

CLAUDE = payloads("claude_code")
WAIT = ("writes", "deploys")
#: Bash commands starting with "deploy " need a human; the approver may edit the command.
POLICY = HOOK_POLICY.replace(
    "  - name: shell\n",
    "  - name: deploys\n"
    '    match: {type: bash, target: "deploy *"}\n'
    "    risk_level: high\n"
    "    approval: approve\n"
    "  - name: shell\n",
)
DEPLOY = {
    **CLAUDE["bash_ls"],
    "tool_input": {"command": "deploy staging", "description": "Deploy"},
    "tool_use_id": "toolu_deploy",
}


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


def options(policy: Path, db: str, timeout: float) -> list[str]:
    out = ["--policy", str(policy), "--db", db, "--approval-handler", "queue"]
    for rule in WAIT:
        out += ["--wait", rule]
    return [*out, "--approval-timeout", str(timeout)]


@contextlib.contextmanager
def daemon(
    policy: Path, db: str, sock: Path, timeout: float = 30.0
) -> Iterator[tuple[dict[str, Any], subprocess.Popen[str]]]:
    """A real daemon waiting on the ``queue`` channel; yields the clients' configuration."""
    prepare(db)
    proc = subprocess.Popen(
        [AEGIS, "hook", "daemon", *options(policy, db, timeout), "--socket", str(sock)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(600):
            if sock.exists():
                break
            if proc.poll() is not None:
                raise AssertionError(
                    f"the daemon exited: {proc.stderr.read() if proc.stderr else ''}"
                )
            time.sleep(0.05)
        else:
            raise AssertionError("the daemon never listened")
        yield aegis_hook.options(str(policy), db, None, list(WAIT), "queue", timeout, 3600.0), proc
    finally:
        proc.terminate()
        proc.wait(30)


def prepare(db: str) -> None:
    """The store and its approval tables exist before two processes could both create them."""
    store = AuditStore(db)
    try:
        store.approvals.list()
    finally:
        store.close_sync()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([AEGIS, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def pending_request(db: str, waiting: concurrent.futures.Future[Any]) -> str:
    """The id of the one pending request, read by another process as an approver would."""
    for _ in range(300):
        found = json.loads(cli("approvals", "-f", "json", "--db", db).stdout)
        if found:
            return str(found[0]["id"])
        if waiting.done():
            raise AssertionError(f"the hook answered without waiting: {waiting.result()}")
        time.sleep(0.2)
    raise AssertionError("no request was ever made")


def shown(db: str, request: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        cli("approvals", "show", request, "-f", "json", "--db", db).stdout
    )
    return data


def linked(db: str, request: str) -> int | None:
    """The record the request points at; the link is written about a second after the call."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = shown(db, request)["audit_id"]
        if found is not None:
            return int(found)
        time.sleep(0.2)
    return None


def verified(db: str) -> dict[str, Any]:
    done = subprocess.run(
        [AEGIS, "audit", "verify", "-f", "json", "--db", db],
        capture_output=True,
        text=True,
        timeout=120,
    )
    report: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == 0 and report["ok"], report
    return report


def pre(
    config: dict[str, Any], sock: Path, payload: dict[str, Any]
) -> concurrent.futures.Future[Any]:
    """Send ``PreToolUse`` to the daemon (the client's own call) without waiting for it."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    future = pool.submit(
        aegis_hook.ask_daemon, "claude-code", config, json.dumps(payload), str(sock)
    )
    pool.shutdown(wait=False)
    return future


def decided(future: concurrent.futures.Future[Any]) -> dict[str, Any]:
    reply = future.result(timeout=90)
    assert reply is not None, "the daemon did not take the call"
    assert reply["code"] == 0, reply
    out: dict[str, Any] = json.loads(reply["stdout"])["hookSpecificOutput"]
    return out


def post(policy: Path, db: str, sock: Path, payload: dict[str, Any], tool_input: Any) -> None:
    """The agent's ``PostToolUse`` report of what ran, through the installed client."""
    report = {
        **payload,
        "hook_event_name": "PostToolUse",
        "tool_input": tool_input,
        "tool_response": {"success": True},
    }
    done = run(
        [
            AEGIS_HOOK,
            "claude-code",
            *options(policy, db, 30.0),
            "--socket",
            str(sock),
            "--daemon",
            "running",
        ],
        report,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    return folder / "d.sock"


def test_an_approved_call_is_linked_and_its_answers_sealed(
    policy: Path, db_url: str, sock: Path
) -> None:
    with daemon(policy, db_url, sock) as (config, _):
        waiting = pre(config, sock, CLAUDE["write"])
        request = pending_request(db_url, waiting)
        cli("approvals", "approve", request, "--reason", "looks fine", "--db", db_url)
        out = decided(waiting)
        assert out["permissionDecision"] == "allow" and "updatedInput" not in out
        post(policy, db_url, sock, CLAUDE["write"], CLAUDE["write"]["tool_input"])
        [row] = records(db_url)
        assert (row.result, row.approval_request) == ("success", request)
        assert row.approval_answers is not None  # the answer is sealed into the chain
        assert linked(db_url, request) == row.id  # and the request points at the record
    assert verified(db_url)["unchained_answers"] == 0


def test_an_edit_closes_the_submitted_call_and_records_the_one_that_runs(
    policy: Path, db_url: str, sock: Path
) -> None:
    with daemon(policy, db_url, sock) as (config, _):
        waiting = pre(config, sock, CLAUDE["write"])
        request = pending_request(db_url, waiting)
        cli("approvals", "approve", request, "--set", 'content="print(2)\\n"', "--db", db_url)
        out = decided(waiting)
        edited_input = {"file_path": "/home/dev/proj/app.py", "content": "print(2)\n"}
        assert out["permissionDecision"] == "allow"
        assert out["updatedInput"] == edited_input
        submitted, edited = records(db_url)
        # As run_one writes it: the submitted call closed as edited, never run ...
        assert submitted.result == "skipped"
        assert f"before approval (request {request})" in (submitted.reason or "")
        assert submitted.params["content"] == "print(1)\n"
        # ... and the edited call is the next record, linked to it, waiting for its report.
        assert (edited.result, edited.parent_id) == ("pending", submitted.id)
        assert edited.params == edited_input
        assert edited.approval_request == request and edited.approval_answers is not None
        post(policy, db_url, sock, CLAUDE["write"], edited_input)
        assert [r.result for r in records(db_url)] == ["skipped", "success"]
        assert linked(db_url, request) == edited.id
    assert verified(db_url)["unchained_answers"] == 0


def test_an_edited_command_is_decided_and_recorded_as_the_new_command(
    policy: Path, db_url: str, sock: Path
) -> None:
    """The target of a Bash call is its command: an edit of the command is a new target."""
    with daemon(policy, db_url, sock) as (config, _):
        waiting = pre(config, sock, DEPLOY)
        request = pending_request(db_url, waiting)
        cli("approvals", "approve", request, "--set", 'command="deploy canary"', "--db", db_url)
        out = decided(waiting)
        assert out["permissionDecision"] == "allow"
        assert out["updatedInput"]["command"] == "deploy canary"
        submitted, edited = records(db_url)
        assert (submitted.target, submitted.result) == ("deploy staging", "skipped")
        assert (edited.target, edited.result) == ("deploy canary", "pending")
        post(policy, db_url, sock, DEPLOY, out["updatedInput"])
        assert [(r.target, r.result) for r in records(db_url)] == [
            ("deploy staging", "skipped"),
            ("deploy canary", "success"),
        ]


def test_an_edit_into_a_blocked_command_is_denied(policy: Path, db_url: str, sock: Path) -> None:
    """The policy in force decides the edited call: ``no_rm_rf`` wins over the approver."""
    with daemon(policy, db_url, sock) as (config, _):
        waiting = pre(config, sock, DEPLOY)
        request = pending_request(db_url, waiting)
        cli("approvals", "approve", request, "--set", 'command="rm -rf /home/dev"', "--db", db_url)
        out = decided(waiting)
        assert out["permissionDecision"] == "deny", out
        assert "no_rm_rf" in out["permissionDecisionReason"]
        rows = records(db_url)
    assert [r.result for r in rows] == ["blocked"]
    assert rows[0].approval_request == request and rows[0].approval_answers is not None
    assert verified(db_url)["unchained_answers"] == 0


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        ("content.x=1", "could not be applied"),  # content is a string, not a mapping
        ("file_path=5", "file_path"),  # the edited call is not a Write the agent can run
    ],
)
def test_an_edit_that_cannot_run_is_denied(
    policy: Path, db_url: str, sock: Path, edit: str, words: str
) -> None:
    with daemon(policy, db_url, sock) as (config, _):
        waiting = pre(config, sock, CLAUDE["write"])
        request = pending_request(db_url, waiting)
        cli("approvals", "approve", request, "--set", edit, "--db", db_url)
        out = decided(waiting)
        assert out["permissionDecision"] == "deny", out
        assert words in out["permissionDecisionReason"]
        [row] = records(db_url)
    assert (row.result, row.approval_request) == ("denied", request)
    assert words in (row.reason or "")


def test_a_denied_call_closes_its_record_as_denied(policy: Path, db_url: str, sock: Path) -> None:
    with daemon(policy, db_url, sock) as (config, _):
        waiting = pre(config, sock, CLAUDE["write"])
        request = pending_request(db_url, waiting)
        cli("approvals", "deny", request, "--reason", "not on a Friday", "--db", db_url)
        out = decided(waiting)
        assert out["permissionDecision"] == "deny"
        assert "not on a Friday" in out["permissionDecisionReason"]
        [row] = records(db_url)
    assert (row.result, row.approval_request) == ("denied", request)
    assert "not on a Friday" in (row.reason or "")
    assert row.approval_answers is not None
    assert shown(db_url, request)["state"] == "denied"
    assert verified(db_url)["unchained_answers"] == 0


def test_an_unanswered_call_expires_as_denied(policy: Path, db_url: str, sock: Path) -> None:
    with daemon(policy, db_url, sock, timeout=1.5) as (config, _):
        out = decided(pre(config, sock, CLAUDE["write"]))
        assert out["permissionDecision"] == "deny"
        assert "timed out" in out["permissionDecisionReason"]
        [row] = records(db_url)
    assert row.result == "denied" and row.approval_request is not None
    assert "timed out" in (row.reason or "")
    assert shown(db_url, row.approval_request)["state"] == "expired"
    assert verified(db_url)["ok"]


def test_a_daemon_stopped_while_waiting_denies_and_records_why(
    policy: Path, db_url: str, sock: Path
) -> None:
    """SIGTERM (a logout, a restart) while a call waits on a human: the call is denied and its
    record says why; the request is not left pending for someone to approve in vain."""
    with daemon(policy, db_url, sock) as (config, proc):
        waiting = pre(config, sock, CLAUDE["write"])
        request = pending_request(db_url, waiting)
        proc.send_signal(signal.SIGTERM)
        with pytest.raises(aegis_hook.Denied):
            waiting.result(timeout=60)
        assert proc.wait(30) == 0
    [row] = records(db_url)
    assert row.result == "denied"
    assert "cancelled while awaiting approval" in (row.reason or "")
    assert shown(db_url, request)["state"] != "pending"
    assert verified(db_url)["ok"]


def test_a_client_that_gives_up_ends_the_wait_it_started(
    policy: Path, db_url: str, sock: Path
) -> None:
    """The agent killed its hook (its own timeout, an interrupt) while a human was asked: the
    daemon went on waiting, and a later "approve" recorded the call as approved, for a tool
    the agent never ran, and left the row to be closed an hour later as not reported."""
    import socket

    with daemon(policy, db_url, sock) as (config, _proc):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(str(sock))
        raw = json.dumps(CLAUDE["write"])
        digest = aegis_hook.file_digest(config["policy"])
        key = aegis_hook.canonical(config)
        conn.sendall(aegis_hook.frame([aegis_hook.PROTOCOL, "claude-code", key, digest, raw]))
        never = concurrent.futures.Future[Any]()
        request = pending_request(db_url, never)
        conn.close()  # the client is gone
        deadline = time.monotonic() + 20
        while shown(db_url, request)["state"] == "pending" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert shown(db_url, request)["state"] == "cancelled"
        late = subprocess.run(
            [AEGIS, "approvals", "approve", request, "--db", db_url],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert late.returncode != 0  # answered too late: an error, not an approval
    [row] = records(db_url)
    assert (row.decision, row.result) != ("approved", "pending")
    assert row.result == "denied"


# --- the same history as run_one, side by side ---------------------------------------------


class _Runs(BaseExecutor):
    async def execute(self, action: Any) -> Any:
        return Result(action, ResultStatus.SUCCESS)


def _approve_from_outside(db: str, edit: str | None) -> None:
    """Wait for the pending request and answer it from another process."""
    for _ in range(300):
        found = json.loads(cli("approvals", "-f", "json", "--db", db).stdout)
        if found:
            extra = ["--set", edit] if edit else []
            cli("approvals", "approve", found[0]["id"], *extra, "--db", db)
            return
        time.sleep(0.2)
    raise AssertionError("no request was ever made")


def _history(db: str) -> list[tuple[Any, ...]]:
    """What a reader of ``aegis audit`` and ``aegis approvals show`` sees, ids made relative."""
    rows = records(db)
    first = rows[0].id
    out: list[tuple[Any, ...]] = []
    for r in rows:
        request = shown(db, r.approval_request) if r.approval_request else None
        out.append(
            (
                r.result,
                r.params,
                None if r.parent_id is None else r.parent_id - first,
                # How the submitted call was closed; an outcome's reason names who ran it.
                (r.reason or "").split(" (request")[0] if r.result == "skipped" else None,
                r.approval_answers is not None,
                None
                if request is None or request["audit_id"] is None
                else request["audit_id"] - first,
            )
        )
    return out


@pytest.mark.parametrize("edit", [None, 'content="print(2)\\n"'])
async def test_the_hook_leaves_the_history_run_one_leaves(
    policy: Path, tmp_path: Path, edit: str | None
) -> None:
    write = mapping.claude_call(CLAUDE["write"])
    histories = []
    for name in ("run_one", "hook"):
        db = f"sqlite:///{tmp_path / (name + '.db')}"
        prepare(db)
        runtime = Runtime(
            executor=_Runs(),
            policy=Policy.from_yaml(policy),
            audit=db,
            approval_handler="queue",
            approval_timeout=60,
            agent_id="claude-code",
        )
        async with runtime:
            answering = asyncio.create_task(asyncio.to_thread(_approve_from_outside, db, edit))
            if name == "run_one":
                result = await runtime.run_one(write.action)
                assert result.ok
                ran = dict(result.action.params)
            else:
                got = await pre_tool_use(runtime, write, wait_rules=WAIT)
                assert got.decision == "allow"
                ran = got.updated_input or dict(write.action.params)
                report = {**CLAUDE["write"], "hook_event_name": "PostToolUse", "tool_input": ran}
                await post_tool_use(runtime, mapping.claude_call(report))
            await answering
        histories.append((_history(db), ran))
    assert histories[0] == histories[1]


# --- agents that cannot run an edited call ---------------------------------------------------

CURSOR_DEPLOY = {
    "hook_event_name": "beforeShellExecution",
    "command": "deploy staging",
    "cwd": "/w",
    "conversation_id": "c1",
    "generation_id": "g1",
    "workspace_roots": ["/w"],
}


@pytest.mark.parametrize(
    ("agent", "payload"),
    [
        ("codex", {**payloads("codex")["bash_ls"], "tool_input": {"command": "deploy staging"}}),
        ("cursor", CURSOR_DEPLOY),
    ],
)
async def test_an_edit_for_an_agent_without_edited_input_is_denied(
    policy: Path, db_url: str, agent: str, payload: dict[str, Any]
) -> None:
    """Codex and Cursor would run the call as submitted: allowing it "with edits" would run
    one call and record another."""
    from aegis.adapters.hooks.handle import HookOptions, Hooks

    prepare(db_url)
    options = HookOptions(str(policy), db_url, wait=("deploys",), approval_handler="queue")
    hooks = Hooks(options)
    try:
        answering = asyncio.create_task(
            asyncio.to_thread(_approve_from_outside, db_url, 'command="deploy canary"')
        )
        reply = await hooks.handle(agent, json.dumps(payload))
        await answering
    finally:
        await hooks.close()
    if agent == "cursor":
        assert json.loads(reply.stdout)["permission"] == "deny", reply
    else:
        assert (reply.code, reply.stdout) == (2, ""), reply
        assert "cannot run an edited call" in reply.stderr
    [row] = records(db_url)
    assert (row.target, row.result) == ("deploy staging", "denied")
    assert "cannot run an edited call" in (row.reason or "")
