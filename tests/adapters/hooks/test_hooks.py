"""``aegis hook claude-code`` / ``cursor``: recorded payloads in, the documented answers out."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aegis.adapters.hooks import mapping as hooks
from aegis.adapters.hooks.run import post_tool_use, pre_tool_use
from hooks_testkit import AEGIS, HOOK_POLICY, payloads, records

from aegis import Policy, Runtime

PAYLOADS = payloads("claude_code")


def run_hook(payload: Any, policy: Path, db: str, *extra: str) -> subprocess.CompletedProcess[str]:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return subprocess.run(
        [AEGIS, "hook", "claude-code", "--policy", str(policy), "--db", db, *extra],
        input=data,
        capture_output=True,
        text=True,
        timeout=120,
    )


def answer(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)["hookSpecificOutput"]
    assert out["hookEventName"] == "PreToolUse"
    return out


@pytest.mark.parametrize(
    ("name", "kind", "target"),
    [
        ("bash_rm", "bash", "rm -rf /home/dev/proj/build"),
        ("write", "write", "/home/dev/proj/app.py"),
        ("edit_env", "edit", "/home/dev/proj/.env"),
        ("read", "read", "/home/dev/proj/README.md"),
        ("webfetch", "webfetch", "https://example.com/docs"),
        ("mcp_delete", "delete_contact", "crm"),
    ],
)
def test_tool_to_action_mapping(name: str, kind: str, target: str) -> None:
    call = hooks.claude_call(PAYLOADS[name])
    assert (call.action.type, call.action.target) == (kind, target)
    assert call.action.params == PAYLOADS[name]["tool_input"]
    assert call.action.session_id == "abc123"
    assert "/home/dev/proj" in call.action.description


def test_mapping_can_be_overridden() -> None:
    call = hooks.claude_call(PAYLOADS["bash_ls"], {"Bash": ("shell", "description")})
    assert (call.action.type, call.action.target) == ("shell", "List files")


@pytest.mark.parametrize(
    ("name", "decision", "words"),
    [
        ("bash_rm", "deny", "no_rm_rf"),
        ("bash_ls", "allow", "shell"),
        ("read", "allow", "reads"),
        ("write", "ask", "writes"),
        ("edit_env", "ask", "env_files"),
        ("webfetch", "deny", "defaults"),
        ("mcp_delete", "deny", "crm_deletes"),
    ],
)
async def test_recorded_payloads_get_the_documented_answers(
    hook_policy: Path, db_url: str, name: str, decision: str, words: str
) -> None:
    runtime = Runtime(
        executor=_no_exec(),
        policy=Policy.from_yaml(hook_policy),
        audit=db_url,
        agent_id="claude-code",
    )
    async with runtime:
        got = await pre_tool_use(runtime, hooks.claude_call(PAYLOADS[name]), wait_rules=())
    assert got.decision == decision
    assert words in got.reason
    [row] = records(db_url)
    assert (row.session_id, row.agent_id) == ("abc123", "claude-code")
    expected = {"deny": "blocked", "allow": "pending", "ask": "pending"}[decision]
    assert row.result == expected


async def test_wait_rule_asks_the_channel_and_a_denial_is_a_deny(
    hook_policy: Path, db_url: str
) -> None:
    from aegis.runtime.approval.handlers import CallbackApprovalHandler

    asked: list[str] = []

    def human(action: Any, decision: Any) -> bool:
        asked.append(action.target)
        return action.target.endswith(".py")

    runtime = Runtime(
        executor=_no_exec(),
        policy=Policy.from_yaml(hook_policy),
        audit=db_url,
        approval_handler=CallbackApprovalHandler(human),
    )
    async with runtime:
        ok = await pre_tool_use(runtime, hooks.claude_call(PAYLOADS["write"]), wait_rules={"*"})
        no = await pre_tool_use(
            runtime, hooks.claude_call(PAYLOADS["edit_env"]), wait_rules={"env_files"}
        )
    assert asked == ["/home/dev/proj/app.py", "/home/dev/proj/.env"]
    assert ok.decision == "allow" and no.decision == "deny"
    rows = {r.target: (r.decision, r.result) for r in records(db_url)}
    assert rows["/home/dev/proj/app.py"] == ("approved", "pending")
    assert rows["/home/dev/proj/.env"] == ("denied", "denied")


@pytest.mark.parametrize(
    ("approvers", "decision"),
    [
        ('{allow: ["slack:U123"]}', "deny"),  # the person at the prompt is not slack:U123
        ("{quorum: 2}", "deny"),  # one prompt is one answer
        ('{allow: ["cli:*"]}', "deny"),
        ('{allow: ["prompt:claude-code"]}', "ask"),  # named: the agent's prompt may answer
        ('{allow: ["prompt:*"], quorum: 2}', "deny"),
        ("{timeout: 5m}", "ask"),  # no allow list: any answer, as before
    ],
)
async def test_an_unwaited_rule_asks_the_prompt_only_when_the_prompt_may_answer(
    tmp_path: Path, db_url: str, approvers: str, decision: str
) -> None:
    """The agent's own prompt is answered by whoever sits at it: it is one unnamed answer,
    "prompt:<agent>". A rule that names who may approve, or wants two approvers, is not met
    by it; delegating there let anyone at the keyboard approve a call the rule kept for
    others, and the record said "approved"."""
    policy = tmp_path / "policy.yaml"
    named = HOOK_POLICY.replace(
        "  - name: writes\n    match: {type: write}\n    risk_level: high\n    approval: approve\n",
        "  - name: writes\n    match: {type: write}\n    risk_level: high\n    approval: approve\n"
        f"    approvers: {approvers}\n",
    )
    assert named != HOOK_POLICY
    policy.write_text(named, encoding="utf-8")
    runtime = Runtime(executor=_no_exec(), policy=Policy.from_yaml(policy), audit=db_url)
    async with runtime:
        got = await pre_tool_use(runtime, hooks.claude_call(PAYLOADS["write"]), wait_rules=())
    assert got.decision == decision, got.reason
    [row] = records(db_url)
    if decision == "deny":
        # No human answered: stopped on the fail-closed path, as a Codex call that cannot ask.
        assert (row.decision, row.result) == ("error", "denied")
        assert "--wait writes" in got.reason
    else:
        assert row.result == "pending"


async def test_post_tool_use_completes_the_record_with_the_outcome(
    hook_policy: Path, db_url: str
) -> None:
    runtime = Runtime(executor=_no_exec(), policy=Policy.from_yaml(hook_policy), audit=db_url)
    async with runtime:
        for pre, post in (("bash_ls", "bash_ls_post"), ("bash_make", "bash_fail_post")):
            await pre_tool_use(runtime, hooks.claude_call(PAYLOADS[pre]), wait_rules=())
            await post_tool_use(runtime, hooks.claude_call(PAYLOADS[post]))
    rows = [(r.target, r.result, r.error) for r in records(db_url)]
    assert rows == [("ls -la", "success", None), ("make test", "failed", "exit status 2")]
    assert records(db_url)[0].id == 1 and len(rows) == 2  # completed in place, not a second row


def test_a_failure_report_closes_the_record_as_failed(hook_policy: Path, db_url: str) -> None:
    """Claude Code reports a failed tool with ``PostToolUseFailure``, not ``PostToolUse``: that
    was refused as an unknown event (and not installed), so the record waited an hour to be
    closed as "outcome not reported" for a call whose failure was reported."""
    allowed = answer(run_hook(PAYLOADS["bash_make"], hook_policy, db_url))
    assert allowed["permissionDecision"] == "allow"
    done = run_hook(PAYLOADS["bash_make_failure"], hook_policy, db_url)
    assert done.returncode == 0 and done.stdout == "", done.stderr
    [row] = records(db_url)
    assert (row.target, row.result, row.error) == (
        "make test",
        "failed",
        "Command failed with exit code 2",
    )


def test_install_also_takes_failure_reports(tmp_path: Path, hook_policy: Path) -> None:
    args = [AEGIS, "hook", "claude-code", "--install", "--project", "--policy", str(hook_policy)]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    hooks_ = json.loads((tmp_path / ".claude" / "settings.json").read_text())["hooks"]
    assert set(hooks_) == {"PreToolUse", "PostToolUse", "PostToolUseFailure"}


def test_the_real_process_blocks_allows_and_completes(hook_policy: Path, db_url: str) -> None:
    denied = answer(run_hook(PAYLOADS["bash_rm"], hook_policy, db_url))
    assert (
        denied["permissionDecision"] == "deny" and "no_rm_rf" in denied["permissionDecisionReason"]
    )
    allowed = answer(run_hook(PAYLOADS["bash_ls"], hook_policy, db_url))
    assert allowed["permissionDecision"] == "allow"
    post = run_hook(PAYLOADS["bash_ls_post"], hook_policy, db_url)
    assert post.returncode == 0 and post.stdout == ""
    assert [(r.target, r.result) for r in records(db_url)] == [
        ("rm -rf /home/dev/proj/build", "blocked"),
        ("ls -la", "success"),
    ]


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1, 2]",
        json.dumps({"hook_event_name": "PreToolUse"}),
        json.dumps({**PAYLOADS["bash_ls"], "tool_input": "ls"}),
        json.dumps({**PAYLOADS["bash_ls"], "tool_input": {"description": "no command"}}),
        json.dumps({**PAYLOADS["bash_ls"], "hook_event_name": "SomethingElse"}),
    ],
)
def test_malformed_payload_is_denied_with_exit_2(hook_policy: Path, db_url: str, raw: str) -> None:
    done = run_hook(raw, hook_policy, db_url)
    assert done.returncode == 2
    assert "denied" in done.stderr
    assert '"allow"' not in done.stdout


def test_broken_policy_is_denied_not_allowed(tmp_path: Path, db_url: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: '1'\nrules: [{name: x, match: {type: bash}, approval: maybe}]\n")
    done = run_hook(PAYLOADS["bash_ls"], bad, db_url)
    assert done.returncode == 2 and "denied" in done.stderr


def test_install_keeps_other_settings_and_uninstall_removes_only_ours(
    tmp_path: Path, hook_policy: Path
) -> None:
    settings = tmp_path / ".claude" / "settings.json"
    settings.parent.mkdir()
    theirs = {"matcher": "Bash", "hooks": [{"type": "command", "command": "my-linter"}]}
    settings.write_text(json.dumps({"model": "x", "hooks": {"PreToolUse": [theirs]}}))
    args = [AEGIS, "hook", "claude-code", "--install", "--project", "--policy", str(hook_policy)]
    for _ in range(2):  # installing twice leaves one entry
        done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    data = json.loads(settings.read_text())
    assert data["model"] == "x"
    pre = data["hooks"]["PreToolUse"]
    assert pre[0] == theirs and len(pre) == 2
    command = pre[1]["hooks"][0]["command"]
    assert "hook claude-code" in command and str(hook_policy) in command
    assert len(data["hooks"]["PostToolUse"]) == 1
    undo = [AEGIS, "hook", "claude-code", "--uninstall", "--project"]
    done = subprocess.run(undo, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(settings.read_text()) == {"model": "x", "hooks": {"PreToolUse": [theirs]}}


@pytest.mark.parametrize(("extra", "at_least"), [((), 60), (("--approval-timeout", "300"), 300)])
def test_install_gives_the_hook_time_to_answer_and_blocks_if_it_cannot(
    tmp_path: Path, hook_policy: Path, extra: tuple[str, ...], at_least: int
) -> None:
    """Claude Code lets a tool call through when its PreToolUse hook times out or crashes,
    unless the hook says ``onFailure: block``; and it killed a hook still waiting on a
    human at 60 s whatever ``--approval-timeout`` said."""
    args = [AEGIS, "hook", "claude-code", "--install", "--project", "--policy", str(hook_policy)]
    args += ["--wait", "writes", "--approval-handler", "queue", *extra]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    hooks_ = json.loads((tmp_path / ".claude" / "settings.json").read_text())["hooks"]
    [pre] = hooks_["PreToolUse"][0]["hooks"]
    assert pre["onFailure"] == "block"
    assert pre["timeout"] > at_least  # the wait, plus the hook's own start and the record
    [post] = hooks_["PostToolUse"][0]["hooks"]
    assert "onFailure" not in post  # a failed report must not undo a call that already ran


@pytest.mark.parametrize("value", ["nan", "inf", "-5", "0"])
def test_an_unusable_timeout_is_a_usage_error_not_a_traceback(
    tmp_path: Path, hook_policy: Path, value: str
) -> None:
    args = [AEGIS, "hook", "claude-code", "--install", "--project", "--policy", str(hook_policy)]
    done = subprocess.run(
        [*args, "--approval-timeout", value], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 2 and "--approval-timeout" in done.stderr, done.stderr
    assert not (tmp_path / ".claude").exists()


@pytest.mark.parametrize(
    ("payload", "permission"),
    [
        (
            {
                "hook_event_name": "beforeShellExecution",
                "command": "rm -rf /",
                "cwd": "/w",
                "conversation_id": "c1",
                "generation_id": "g1",
                "workspace_roots": ["/w"],
            },
            "deny",
        ),
        (
            {
                "hook_event_name": "beforeShellExecution",
                "command": "ls",
                "cwd": "/w",
                "conversation_id": "c1",
                "generation_id": "g2",
                "workspace_roots": ["/w"],
            },
            "allow",
        ),
        (
            {
                "hook_event_name": "beforeMCPExecution",
                "tool_name": "delete_contact",
                "tool_input": '{"id": 1}',
                "url": "crm",
                "conversation_id": "c1",
                "generation_id": "g3",
                "workspace_roots": ["/w"],
            },
            "deny",
        ),
        (
            {
                "hook_event_name": "beforeReadFile",
                "file_path": "/w/a.txt",
                "content": "x",
                "conversation_id": "c1",
                "generation_id": "g4",
                "workspace_roots": ["/w"],
            },
            "allow",
        ),
        ("garbage", "deny"),
    ],
)
def test_cursor_hooks(hook_policy: Path, db_url: str, payload: Any, permission: str) -> None:
    done = subprocess.run(
        [AEGIS, "hook", "cursor", "--policy", str(hook_policy), "--db", db_url],
        input=payload if isinstance(payload, str) else json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["permission"] == permission


def _no_exec() -> Any:
    from aegis.adapters.base import BaseExecutor

    class NoExec(BaseExecutor):
        async def execute(self, action: Any) -> Any:
            raise AssertionError("a hook must never execute the tool itself")

    return NoExec()


async def test_wait_rule_edited_by_the_approver_answers_updated_input(
    hook_policy: Path, db_url: str
) -> None:
    import asyncio

    runtime = Runtime(
        executor=_no_exec(),
        policy=Policy.from_yaml(hook_policy),
        audit=db_url,
        approval_handler="queue",
        approval_timeout=60,
    )
    async with runtime:
        # Create the approval tables first: ApprovalBook's lazy create_all is not safe against
        # a concurrent first use from another thread (reported to the core).
        runtime.audit.approvals.list()
        task = asyncio.create_task(
            pre_tool_use(runtime, hooks.claude_call(PAYLOADS["write"]), wait_rules={"writes"})
        )
        request = None
        for _ in range(300):  # the request row, read in-process; the answer comes from outside
            found = await asyncio.to_thread(runtime.audit.approvals.list, state="pending")
            if found:
                request = found[0].id
                break
            if task.done():
                raise AssertionError(f"the hook answered without waiting: {task.result()}")
            await asyncio.sleep(0.1)
        assert request is not None
        done = subprocess.run(
            [
                AEGIS,
                "approvals",
                "approve",
                request,
                "--set",
                'content="print(2)\\n"',
                "--db",
                db_url,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        got = await asyncio.wait_for(task, 60)
    assert got.decision == "allow" and "edited" in got.reason
    assert got.updated_input == {"file_path": "/home/dev/proj/app.py", "content": "print(2)\n"}
    out = json.loads(hooks.claude_answer(got.decision, got.reason, got.updated_input))
    assert out["hookSpecificOutput"]["updatedInput"]["content"] == "print(2)\n"


async def test_a_lifecycle_veto_denies_in_the_hook_too(hook_policy: Path, db_url: str) -> None:
    from aegis.runtime.hooks import RuntimeHooks

    def veto(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("change freeze")

    runtime = Runtime(
        executor=_no_exec(),
        policy=Policy.from_yaml(hook_policy),
        audit=db_url,
        hooks=RuntimeHooks(before_execute=veto),
    )
    async with runtime:
        got = await pre_tool_use(runtime, hooks.claude_call(PAYLOADS["bash_ls"]), wait_rules=())
    assert got.decision == "deny" and "change freeze" in got.reason
    assert [r.result for r in records(db_url)] == ["blocked"]


def _cursor(policy: Path, db: str, payload: Any, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AEGIS, "hook", "cursor", "--policy", str(policy), "--db", db, *extra],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=120,
    )


CURSOR_SHELL = {
    "hook_event_name": "beforeShellExecution",
    "command": "ls",
    "cwd": "/w",
    "conversation_id": "c1",
    "generation_id": "g9",
    "workspace_roots": ["/w"],
}


def test_cursor_after_event_completes_the_row(hook_policy: Path, db_url: str) -> None:
    assert json.loads(_cursor(hook_policy, db_url, CURSOR_SHELL).stdout)["permission"] == "allow"
    after = {
        **CURSOR_SHELL,
        "hook_event_name": "afterShellExecution",
        "output": "a\n",
        "duration": 12,
    }
    done = _cursor(hook_policy, db_url, after)
    assert done.returncode == 0 and json.loads(done.stdout) == {}
    [row] = records(db_url)
    assert (row.target, row.result, row.agent_id) == ("ls", "success", "cursor")


def test_a_row_nobody_reports_is_closed_as_not_reported(hook_policy: Path, db_url: str) -> None:
    read = {
        "hook_event_name": "beforeReadFile",
        "file_path": "/w/a.txt",
        "content": "x",
        "conversation_id": "c1",
        "generation_id": "g4",
        "workspace_roots": ["/w"],
    }  # Cursor sends no event after a read: the row can only be closed by its deadline
    assert (
        json.loads(_cursor(hook_policy, db_url, read, "--report-timeout", "0").stdout)["permission"]
        == "allow"
    )
    assert [r.result for r in records(db_url)] == ["pending"]
    # The next hook call closes overdue rows on its way (the daemon does it on a timer).
    assert json.loads(_cursor(hook_policy, db_url, CURSOR_SHELL).stdout)["permission"] == "allow"
    rows = records(db_url)
    assert (rows[0].target, rows[0].result, rows[0].error) == (
        "/w/a.txt",
        "failed",
        "outcome not reported",
    )
    assert rows[1].result == "pending"
