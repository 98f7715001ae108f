"""``aegis-hook codex``: Codex's documented payloads (Claude Code's wire format) in, answers out.

Codex blocks a call on exit code 2 with the reason on stderr; an allow prints nothing. Its
hooks cannot ask, so an approve rule nobody waits on is a deny, never an "ask" Codex might
ignore and run anyway.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aegis.adapters.hooks import mapping
from hooks_testkit import AEGIS_HOOK, payloads, records, run

CODEX = payloads("codex")


def hook(policy: Path, db: str, name: str) -> tuple[int, str, str]:
    done = run(
        [AEGIS_HOOK, "codex", "--policy", str(policy), "--db", db, "--daemon", "off"], CODEX[name]
    )
    return done.returncode, done.stdout, done.stderr


def test_apply_patch_names_every_file_it_touches() -> None:
    call = mapping.codex_call(CODEX["patch_py_and_env"])
    targets = [call.action.target, *(c.target for c in call.candidates)]
    assert targets == ["/home/dev/proj/src/app.py", "/home/dev/proj/.env"]
    assert call.action.type == "edit" and call.action.metadata["hook"] == "codex"


@pytest.mark.parametrize(
    ("name", "code", "words"),
    [
        ("bash_ls", 0, ""),
        ("bash_rm", 2, "no_rm_rf"),
        ("patch_py", 0, ""),
        ("patch_py_and_env", 2, "env_files"),  # the .env file decides, and Codex cannot ask
        ("mcp_delete", 2, "crm_deletes"),
    ],
)
def test_recorded_codex_payloads(
    hook_policy: Path, db_url: str, name: str, code: int, words: str
) -> None:
    got, out, err = hook(hook_policy, db_url, name)
    assert got == code, err
    assert out == ""  # an allow says nothing; a deny goes to stderr
    assert words in err
    [row] = records(db_url)
    assert row.agent_id == "codex" and row.session_id == "019a-codex"
    assert row.result == (
        "pending" if code == 0 else "blocked" if words != "env_files" else "denied"
    )


def test_post_tool_use_completes_the_codex_record(hook_policy: Path, db_url: str) -> None:
    assert hook(hook_policy, db_url, "bash_ls")[0] == 0
    assert hook(hook_policy, db_url, "bash_ls_post")[0] == 0
    [row] = records(db_url)
    assert (row.target, row.result) == ("ls -la", "success")


def test_malformed_codex_payload_is_exit_2(hook_policy: Path, db_url: str) -> None:
    bad = {**CODEX["patch_py"], "tool_input": {"command": "no file headers here"}}
    args = ["--policy", str(hook_policy), "--db", db_url, "--daemon", "off"]
    done = run([AEGIS_HOOK, "codex", *args], bad)
    assert done.returncode == 2 and "denied" in done.stderr and done.stdout == ""


def test_codex_install_writes_hooks_json_and_keeps_the_rest(
    tmp_path: Path, hook_policy: Path
) -> None:
    import json
    import subprocess

    from hooks_testkit import AEGIS

    target = tmp_path / ".codex" / "hooks.json"
    target.parent.mkdir()
    theirs = {"matcher": "Bash", "hooks": [{"type": "command", "command": "my-check"}]}
    target.write_text(json.dumps({"hooks": {"PreToolUse": [theirs]}}))
    args = [AEGIS, "hook", "codex", "--install", "--policy", str(hook_policy)]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    data = json.loads(target.read_text())
    assert set(data) == {"hooks"}  # Codex refuses unknown root fields
    pre = data["hooks"]["PreToolUse"]
    assert pre[0] == theirs and "aegis-hook codex" in pre[1]["hooks"][0]["command"]
    undo = [AEGIS, "hook", "codex", "--uninstall"]
    assert subprocess.run(undo, cwd=tmp_path, capture_output=True, timeout=60).returncode == 0
    assert json.loads(target.read_text()) == {"hooks": {"PreToolUse": [theirs]}}
