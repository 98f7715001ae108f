"""What a newcomer meets first: ``aegis`` alone, ``-V``, help text, and Ctrl-C on ``--tail``."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli_helpers import AEGIS_SCRIPT, RunCli

from aegis import __version__
from aegis.cli.app import BUILTIN_COMMANDS, build_app


def test_short_version_flag(run_cli: RunCli) -> None:
    for flag in ("-V", "--version"):
        result = run_cli(flag)
        assert (result.code, result.out.strip(), result.err) == (0, __version__, "")


def test_bare_aegis_shows_help_and_is_a_usage_error(run_cli: RunCli) -> None:
    result = run_cli()
    assert result.code == 2  # the exit-code table: no command is a usage error
    assert "Commands" in result.out and "simulate" in result.out
    assert result.err == "aegis: error: no command given; choose one of the commands above\n"


def test_bare_aegis_script_exit_code(tmp_path: Path) -> None:
    run = subprocess.run(
        [str(AEGIS_SCRIPT)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2
    assert len(run.stderr.splitlines()) == 1 and "Traceback" not in run.stderr


def _every_command() -> list[str]:
    """Every built-in command and subcommand, found by walking the app (new ones included)."""
    from cyclopts import App

    def walk(app: App, prefix: list[str]) -> list[str]:
        found: list[str] = []
        for name in app:
            if not name.startswith("-"):
                found += [" ".join([*prefix, name]), *walk(app[name], [*prefix, name])]
        return found

    return walk(build_app(with_plugins=False), [])


def test_the_command_walk_finds_them_all() -> None:
    assert set(BUILTIN_COMMANDS) | {"audit verify"} <= set(_every_command())


@pytest.mark.parametrize("command", _every_command(), ids=lambda c: c.replace(" ", "-"))
def test_help_has_no_generated_negative_list_flags(run_cli: RunCli, command: str) -> None:
    result = run_cli(*command.split(), "--help")
    assert result.code == 0, result.err
    assert "--empty-" not in result.out
    assert not re.search(r"--no-(set|param|files)\b", result.out)


def test_list_options_still_take_several_values(run_cli: RunCli, tmp_path: Path) -> None:
    """Dropping the --empty-* twins must not break the list options they belonged to."""
    assert run_cli("init").code == 0
    result = run_cli(
        "simulate", "policy.yaml", "bulk_update:crm", "-p", "count=150", "-p", "x=1", "-f", "json"
    )
    assert result.code == 0, result.err
    [decision] = json.loads(result.out)
    assert decision["params"] == {"count": 150, "x": 1}
    assert decision["matched_rule"] == "bulk_ops_need_approval"


def test_tail_ctrl_c_exits_130_in_one_line(tmp_path: Path) -> None:
    from test_cli_audit import QUICKSTART, run_actions

    run_actions(tmp_path / "aegis_audit.db", QUICKSTART, session="s1")
    out_file = tmp_path / "tail.jsonl"
    proc = subprocess.Popen(
        [str(AEGIS_SCRIPT), "audit", "--tail", "-f", "jsonl", "-o", str(out_file)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if out_file.exists() and out_file.read_text().count("\n") == 3:
                break
            time.sleep(0.1)
        time.sleep(0.3)  # inside the poll loop's sleep
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert err == "aegis: interrupted\n"
    assert out_file.read_text().count("\n") == 3  # flushed and closed, nothing half-written


def test_tail_stops_even_when_the_interrupt_is_swallowed(tmp_path: Path) -> None:
    """A KeyboardInterrupt raised inside code that swallows it (a finaliser, a broad except)
    must not keep the tail running: the next turn of the loop stops it."""
    import os

    from test_cli_audit import QUICKSTART, run_actions

    from aegis.cli.audit_tail import tail_records
    from aegis.runtime.audit import AuditStore

    db = tmp_path / "aegis_audit.db"
    run_actions(db, QUICKSTART, session="s1")
    store = AuditStore(f"sqlite:///{db}")
    calls = 0
    real_query = store.query

    def query(**kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls > 20:
            raise AssertionError("the tail kept running after Ctrl-C")
        if calls == 3:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)  # the handler runs here and its KeyboardInterrupt is eaten
            except KeyboardInterrupt:
                pass
        return real_query(**kwargs)  # type: ignore[arg-type]

    store.query = query  # type: ignore[method-assign]
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        tail_records(store, {}, fmt="jsonl", output=tmp_path / "t.jsonl", limit=None,
                     interval=0.01)  # fmt: skip
    assert calls == 3  # stopped at the turn after the swallowed interrupt, not later
    assert signal.getsignal(signal.SIGINT) is before  # the previous handler is back
