"""The hook daemon and the ``aegis-hook`` client: fast when trusted, never "allow" when not.

Before the payload is sent, anything untrustworthy (no socket, a stale one, a socket or a
directory others can open, a peer of another user, a daemon configured differently) means the
client decides in-process. After it is sent, no answer, a broken one or one about another
policy means deny: the call may have been recorded and is not decided twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aegis_hook
import pytest
from hooks_testkit import AEGIS, AEGIS_HOOK, payloads, records, run

CLAUDE = payloads("claude_code")


@pytest.fixture
def sock_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def daemon(hook_policy: Path, db_url: str, sock_dir: Path) -> Iterator[Path]:
    """A real ``aegis hook daemon`` for (hook_policy, db_url), on a socket in the test dir."""
    path = sock_dir / "d.sock"
    proc = subprocess.Popen(
        [
            AEGIS,
            "hook",
            "daemon",
            "--policy",
            str(hook_policy),
            "--db",
            db_url,
            "--socket",
            str(path),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(path, proc)
        yield path
    finally:
        proc.terminate()
        proc.wait(30)


def _wait_for(path: Path, proc: subprocess.Popen[str] | None = None) -> None:
    for _ in range(600):
        if path.exists():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the daemon exited: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.05)
    raise AssertionError(f"no socket at {path}")


def config(policy: Path, db: str) -> dict[str, Any]:
    return aegis_hook.options(str(policy), db)


def client(policy: Path, db: str, sock: Path, payload: Any, mode: str = "running") -> Any:
    args = ["claude-code", "--policy", str(policy), "--db", db, "--socket", str(sock)]
    return run([AEGIS_HOOK, *args, "--daemon", mode], payload)


def test_the_daemon_answers_and_audits(hook_policy: Path, db_url: str, daemon: Path) -> None:
    reply = aegis_hook.ask_daemon(
        "claude-code", config(hook_policy, db_url), json.dumps(CLAUDE["bash_ls"]), str(daemon)
    )
    assert reply is not None and reply["code"] == 0  # answered by the daemon, not in-process
    assert json.loads(reply["stdout"])["hookSpecificOutput"]["permissionDecision"] == "allow"
    done = client(hook_policy, db_url, daemon, CLAUDE["bash_ls_post"])
    assert done.returncode == 0, done.stderr
    denied = client(hook_policy, db_url, daemon, CLAUDE["bash_rm"])
    assert json.loads(denied.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert [(r.target, r.result) for r in records(db_url)] == [
        ("ls -la", "success"),
        ("rm -rf /home/dev/proj/build", "blocked"),
    ]
    mode = os.stat(daemon).st_mode & 0o777
    assert mode == 0o600


def test_a_changed_policy_file_is_loaded_again(
    hook_policy: Path, db_url: str, daemon: Path
) -> None:
    text = hook_policy.read_text().replace(
        "match: {type: bash}\n    risk_level: low\n    approval: auto",
        "match: {type: bash}\n    risk_level: low\n    approval: block",
    )
    hook_policy.write_text(text)
    reply = aegis_hook.ask_daemon(
        "claude-code", config(hook_policy, db_url), json.dumps(CLAUDE["bash_ls"]), str(daemon)
    )
    assert reply is not None
    assert json.loads(reply["stdout"])["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_a_daemon_configured_differently_is_not_used(
    hook_policy: Path, db_url: str, daemon: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(hook_policy.read_text().replace("approval: auto", "approval: block"))
    raw = json.dumps(CLAUDE["bash_ls"])
    assert aegis_hook.ask_daemon("claude-code", config(other, db_url), raw, str(daemon)) is None
    # The client then decides in-process, under the policy it was given: blocked.
    done = client(other, db_url, daemon, CLAUDE["bash_ls"])
    assert json.loads(done.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_a_stale_socket_falls_back_in_process(hook_policy: Path, db_url: str, daemon: Path) -> None:
    pid = _peer_pid(daemon)
    os.kill(pid, signal.SIGKILL)  # the socket file stays behind, nobody listens
    time.sleep(0.2)
    assert daemon.exists()
    done = client(hook_policy, db_url, daemon, CLAUDE["bash_ls"])
    assert json.loads(done.stdout)["hookSpecificOutput"]["permissionDecision"] == "allow"
    assert [r.result for r in records(db_url)] == ["pending"]


def test_sockets_and_directories_others_can_open_are_not_trusted(
    hook_policy: Path, db_url: str, daemon: Path
) -> None:
    raw = json.dumps(CLAUDE["bash_ls"])
    cfg = config(hook_policy, db_url)
    os.chmod(daemon, 0o666)
    assert aegis_hook.ask_daemon("claude-code", cfg, raw, str(daemon)) is None
    os.chmod(daemon, 0o600)
    os.chmod(daemon.parent, 0o755)
    assert aegis_hook.ask_daemon("claude-code", cfg, raw, str(daemon)) is None
    os.chmod(daemon.parent, 0o700)
    assert aegis_hook.ask_daemon("claude-code", cfg, raw, str(daemon)) is not None


class FakeDaemon:
    """A socket that answers as an attacker or a broken daemon would."""

    def __init__(self, path: Path, answer: bytes | None, delay: float = 0.0) -> None:
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        os.chmod(path, 0o600)
        self.server.listen()
        self.got: list[bytes] = []

        def serve() -> None:
            conn, _ = self.server.accept()
            with conn:
                self.got.append(conn.recv(1 << 20))
                time.sleep(delay)
                if answer is not None:
                    with contextlib.suppress(OSError):  # the client may have given up
                        conn.sendall(answer)

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.close()


@pytest.mark.parametrize(
    "answer",
    [
        None,  # closes without answering (crashed mid-call)
        b"not json\n",
        b'{"ok": true, "code": 0, "stdout": "{\\"allow\\": 1}", "stderr": ""}\n',  # no digest
        b"[1]\n",
        aegis_hook.frame(["ok", "0" * 128, "[]", "0", '{"allow": 1}', ""]),  # another policy
        aegis_hook.frame(["ok", "0", "0", '{"allow": 1}']),  # too few fields
        aegis_hook.frame(["ok", "x", "y", "0", "", ""])[:-3],  # cut short, then closed
        b"12\n3:abc",  # announces more than it sends
        b"5\nx:abc",  # a field without a length
    ],
)
def test_a_daemon_that_took_the_call_and_failed_means_deny(
    hook_policy: Path, db_url: str, sock_dir: Path, answer: bytes | None
) -> None:
    path = sock_dir / "fake.sock"
    fake = FakeDaemon(path, answer)
    try:
        done = client(hook_policy, db_url, path, CLAUDE["bash_ls"])
    finally:
        fake.close()
    assert fake.got, "the payload was sent"
    assert done.returncode == 2 and "denied" in done.stderr and '"allow"' not in done.stdout
    # ... and it was not decided a second time in-process (nothing even created the trail).
    assert not Path(db_url.removeprefix("sqlite:///")).exists()


def test_a_slow_daemon_means_deny(
    hook_policy: Path, db_url: str, sock_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = sock_dir / "slow.sock"
    fake = FakeDaemon(path, b"{}\n", delay=3.0)
    monkeypatch.setattr(aegis_hook, "ANSWER_TIMEOUT", 0.5)
    try:
        with pytest.raises(aegis_hook.Denied):
            aegis_hook.ask_daemon(
                "claude-code",
                config(hook_policy, db_url),
                json.dumps(CLAUDE["bash_ls"]),
                str(path),
            )
    finally:
        fake.close()


def test_a_peer_running_as_another_user_is_not_trusted(
    hook_policy: Path, db_url: str, sock_dir: Path
) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to run the peer as another user")
    path = sock_dir / "foreign.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))  # the file is ours and 0600: only the process behind it differs
    os.chmod(path, 0o600)
    code = (  # listen() there: SO_PEERCRED names the process that called it
        "import os, socket, sys\n"
        "s = socket.socket(fileno=int(sys.argv[1])); s.listen()\n"
        "c, _ = s.accept(); c.recv(1 << 20)\n"
        "c.sendall(b'{\"ok\": true}\\n')\n"
    )
    peer = subprocess.Popen(  # the system Python: "nobody" cannot run the venv's under /root
        ["/usr/bin/python3", "-c", code, str(server.fileno())],
        pass_fds=[server.fileno()],
        user=65534,
    )
    try:
        time.sleep(0.3)
        raw = json.dumps(CLAUDE["bash_ls"])
        assert (
            aegis_hook.ask_daemon("claude-code", config(hook_policy, db_url), raw, str(path))
            is None
        )
    finally:
        peer.kill()
        peer.wait()
        server.close()


def test_the_client_starts_a_daemon_and_then_uses_it(
    hook_policy: Path, db_url: str, sock_dir: Path
) -> None:
    path = sock_dir / "auto.sock"
    first = client(hook_policy, db_url, path, CLAUDE["bash_ls"], mode="auto")
    assert json.loads(first.stdout)["hookSpecificOutput"]["permissionDecision"] == "allow"
    _wait_for(path)
    try:
        for _ in range(100):  # the socket is bound a moment before the daemon accepts
            reply = aegis_hook.ask_daemon(
                "claude-code",
                config(hook_policy, db_url),
                json.dumps(CLAUDE["bash_ls_post"]),
                str(path),
            )
            if reply is not None:
                break
            time.sleep(0.05)
        assert reply is not None and reply["code"] == 0
        assert [r.result for r in records(db_url)] == ["success"]
    finally:
        os.kill(_peer_pid(path), signal.SIGTERM)


def _peer_pid(path: Path) -> int:
    conn = socket.socket(socket.AF_UNIX)
    try:
        conn.connect(str(path))
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return int(struct.unpack("3i", creds)[0])
    finally:
        conn.close()


@pytest.mark.parametrize(
    "answer",
    [aegis_hook.frame(["refused", "configured differently"]), b'{"ok": false, "why": "v1"}\n'],
)
def test_a_daemon_that_refused_before_deciding_means_in_process(
    hook_policy: Path, db_url: str, sock_dir: Path, answer: bytes
) -> None:
    """A refusal (or an older daemon's, in its JSON protocol) decided nothing: decide here."""
    path = sock_dir / "refusing.sock"
    fake = FakeDaemon(path, answer)
    try:
        done = client(hook_policy, db_url, path, CLAUDE["bash_rm"])
    finally:
        fake.close()
    assert fake.got
    assert json.loads(done.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert [r.result for r in records(db_url)] == ["blocked"]  # decided once, in-process


def test_the_client_imports_only_cheap_modules(
    hook_policy: Path, db_url: str, daemon: Path
) -> None:
    """Start-up is paid on every tool call: the fast path loads no module it can do without."""
    code = (
        "import io, sys\n"
        "before = set(sys.modules)\n"
        "sys.stdin = io.StringIO(sys.argv[1])\n"
        "import aegis_hook\n"
        "code = aegis_hook.main(sys.argv[2:])\n"
        "print(' '.join(sorted(set(sys.modules) - before)), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    args = ["claude-code", "--policy", str(hook_policy), "--db", db_url, "--socket", str(daemon)]
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(CLAUDE["bash_ls"]), *args, "--daemon", "running"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(done.stdout)["hookSpecificOutput"]["permissionDecision"] == "allow"
    loaded = set(done.stderr.split())
    assert loaded <= {"aegis_hook", "__future__", "_socket", "_blake2"}, loaded


def test_an_older_client_is_refused_in_its_own_protocol(daemon: Path) -> None:
    """A client of the JSON-line protocol (before aegis-hook/2) is told no, so it decides."""
    conn = socket.socket(socket.AF_UNIX)
    try:
        conn.connect(str(daemon))
        conn.sendall(json.dumps({"v": 1, "payload": "{}"}).encode() + b"\n")
        answer = json.loads(conn.makefile("rb").readline())
    finally:
        conn.close()
    assert answer["ok"] is False
