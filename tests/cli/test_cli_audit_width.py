"""``aegis audit`` on a real 80-column terminal (a pseudo-terminal) and with COLUMNS=80.

Readable means: one line per record, no line wider than the terminal, Risk / Decision / Result
whole, and the shortened session id is one ``--session`` accepts back.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest
from cli_helpers import AEGIS_SCRIPT, RunCli
from test_cli_audit import run_actions

from aegis import Action
from aegis.cli.audit_fit import FLEX_MIN, fit, tail_layout

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SESSIONS = ("5f1c0a9e3b7d4c2a8e6f0b1d2c3a4e5f", "9a8b7c6d5e4f30211f2e3d4c5b6a7980")
LONG = [
    Action("read_customer_profile_with_history", "crm_production_eu_west_primary"),
    Action("bulk_update", "crm", params={"count": 150}),
    Action("delete_contact", "salesforce://org/contacts"),
]


@pytest.fixture
def busy_trail(tmp_path: Path) -> Path:
    """6 records: long names, two uuid sessions, agents set."""
    db = tmp_path / "aegis_audit.db"
    run_actions(db, LONG, session=SESSIONS[0], agent="sales-assistant-eu-1")
    run_actions(db, LONG, session=SESSIONS[1], agent="support-bot")
    return db


def _pty_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR")}
    env.pop("NO_COLOR", None)
    env.pop("AEGIS_AUDIT_URL", None)
    env["TERM"] = "xterm-256color"
    return env


def _spawn_in_pty(args: list[str], cwd: Path, cols: int) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
    proc = subprocess.Popen(
        [str(AEGIS_SCRIPT), *args],
        cwd=cwd,
        env=_pty_env(),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    return proc, master


def _read_until(master: int, done: object, timeout: float = 30) -> str:
    """Everything the terminal received, until EOF or ``done(text)`` holds."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        text = b"".join(chunks).decode("utf-8", "replace")
        if callable(done) and done(text):
            return text
    return b"".join(chunks).decode("utf-8", "replace")


def _screen_lines(raw: str) -> list[str]:
    return [ANSI.sub("", line).rstrip() for line in raw.replace("\r\n", "\n").split("\n")]


def _run_in_pty(args: list[str], cwd: Path, cols: int) -> tuple[int, list[str]]:
    proc, master = _spawn_in_pty(args, cwd, cols)
    try:
        raw = _read_until(master, None)
        code = proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return code, _screen_lines(raw)


def _record_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if re.match(r"^\s*\d+\s", line)]


def _assert_readable(lines: list[str], cols: int) -> list[str]:
    assert all(len(line) <= cols for line in lines), "\n".join(lines)
    rows = _record_lines(lines)
    assert len(rows) == 6, "\n".join(lines)  # one line per record, none folded
    for row in rows:
        assert re.search(r"\b(LOW|MEDIUM|HIGH|CRITICAL)\b", row), row
        assert re.search(r"\b(auto|approved|denied|blocked)\b", row), row
        assert re.search(r"\b(success|blocked|denied)\s*$", row), row
    return rows


def test_real_80_column_terminal(busy_trail: Path, tmp_path: Path, run_cli: RunCli) -> None:
    code, lines = _run_in_pty(["audit"], tmp_path, 80)
    assert code == 0
    rows = _assert_readable(lines, 80)
    header = next(line for line in lines if line.lstrip().startswith("ID"))
    assert header.split() == [
        "ID", "Time", "Session", "Action", "Target", "Risk", "Decision", "Result"
    ]  # fmt: skip
    assert any("Agent hidden to fit 80 columns" in line for line in lines)
    cell = next(c for c in rows[0].split() if c.endswith("\u2026") and c[:8] in SESSIONS[0])
    assert cell == SESSIONS[0][:8] + "\u2026"
    chosen = run_cli("audit", "--session", cell, "-f", "json")  # what the table shows works
    assert chosen.code == 0, chosen.err
    assert chosen.out.count(SESSIONS[0]) == 3 and SESSIONS[1] not in chosen.out


def test_columns_80_env_in_process(
    busy_trail: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then treats captured stdout as a terminal
    result = run_cli("audit")
    assert result.code == 0, result.err
    _assert_readable(_screen_lines(result.out), 80)


def test_wide_terminal_keeps_everything(busy_trail: Path, tmp_path: Path) -> None:
    code, lines = _run_in_pty(["audit"], tmp_path, 200)
    assert code == 0
    rows = _assert_readable(lines, 200)
    assert "read_customer_profile_with_history" in rows[0]
    assert "sales-assistant-eu-1" in rows[0]


def test_narrow_terminal_hides_and_says_so(busy_trail: Path, tmp_path: Path) -> None:
    code, lines = _run_in_pty(["audit"], tmp_path, 70)
    assert code == 0
    _assert_readable(lines, 70)
    assert any("hidden to fit 70 columns" in line for line in lines)


def test_piped_output_keeps_full_columns(busy_trail: Path, run_cli: RunCli) -> None:
    out = run_cli("audit").out
    assert "read_customer_profile_with_history" in out and SESSIONS[0][:8] + "..." in out
    assert "\u2026" not in out


def test_default_limit_says_how_many_more(run_cli: RunCli, tmp_path: Path) -> None:
    run_actions(tmp_path / "aegis_audit.db", [Action("read", f"t{i}") for i in range(25)],
                session="s")  # fmt: skip
    table = run_cli("audit")
    assert table.code == 0
    ids = [int(line.split()[0]) for line in table.out.splitlines()[1:]]
    assert ids == list(range(6, 26))  # the newest 20, oldest first
    assert table.err == "5 more: use --limit 25 to show all\n"
    everything = run_cli("audit", "--limit", "25")
    assert (len(everything.out.splitlines()), everything.err) == (26, "")
    some = run_cli("audit", "-n", "3", "--action-type", "read")
    assert some.err == "22 more: use --limit 25 to show all\n"
    assert run_cli("audit", "-f", "jsonl").out.count("\n") == 25  # machine formats: all


def test_tail_on_an_80_column_terminal(busy_trail: Path, tmp_path: Path) -> None:
    proc, master = _spawn_in_pty(["audit", "--tail"], tmp_path, 80)
    try:
        raw = _read_until(master, lambda text: text.count("\n") >= 7)
        proc.send_signal(signal.SIGINT)
        raw += _read_until(master, None)
        code = proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    lines = _screen_lines(raw)
    assert code == 130
    rows = _record_lines(lines)
    assert len(rows) == 6 and all(len(line) <= 80 for line in lines), "\n".join(lines)
    assert all(re.search(r"\b(success|blocked|denied)$", row) for row in rows), rows
    assert "aegis: interrupted" in lines


def test_fit_never_shortens_what_readers_scan_for() -> None:
    for width in (80, 100, 120):
        columns, widths = tail_layout(width)
        assert sum(widths) + 2 * (len(widths) - 1) <= width
        assert {"Risk", "Decision", "Result"} <= set(columns)
        assert all(w >= FLEX_MIN for c, w in zip(columns, widths, strict=True) if c == "Action")
    assert fit([], 80).rows == ()


def test_stats_and_simulate_tables_fit_80_columns(
    busy_trail: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert run_cli("init", "--template", "crm").code == 0
    simulate = run_cli("simulate", "policy.yaml", "export_contacts:contacts", "read_contact:c")
    stats = run_cli("stats")
    for result in (simulate, stats):
        assert result.code == 0, result.err
        lines = _screen_lines(result.out)
        assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    sim_lines = _screen_lines(simulate.out)
    sim_rows = [line.split() for line in sim_lines if line.startswith(("export", "read"))]
    assert [row[2:4] for row in sim_rows] == [["CRITICAL", "block"], ["LOW", "auto"]]
    stat_rows = [line.split() for line in _screen_lines(stats.out) if line.startswith("no_del")]
    assert stat_rows == [["no_deletes", "2", "2", "0", "blocked", "2"]]  # one line, whole


def test_fit_gives_up_columns_in_the_documented_order(busy_trail: Path) -> None:
    from aegis.runtime.audit import AuditStore

    records = AuditStore(f"sqlite:///{busy_trail}").query(limit=None)
    wide = fit(records, 200)
    assert wide.hidden == () and "Agent" in wide.columns and wide.width <= 200
    assert wide.rows[0][wide.columns.index("Time")].count("-") == 2  # full date
    at_80 = fit(records, 80)
    assert at_80.hidden == ("Agent",) and at_80.width <= 80
    assert "Session" in at_80.columns
    at_70 = fit(records, 70)
    assert at_70.hidden == ("Agent", "Session") and at_70.width <= 70
    one_session = fit([r for r in records if r.session_id == SESSIONS[0]], 80)
    assert "Session" not in one_session.columns and one_session.hidden == ()
    assert one_session.title is not None and SESSIONS[0] in one_session.title
