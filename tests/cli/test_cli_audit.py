"""audit / audit verify / stats against a real SQLite trail written by a real Runtime."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import AEGIS_SCRIPT, RunCli

from aegis import Action, Policy, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.builtins.templates import TEMPLATE_DIR
from aegis.core.result import Result, ResultStatus
from aegis.runtime.approval.handlers import AutoApprovalHandler


class OkExecutor(BaseExecutor):
    async def execute(self, action: Action) -> Result:
        return Result(action=action, status=ResultStatus.SUCCESS)


def run_actions(db: Path, actions: list[Action], *, session: str, agent: str | None = None) -> None:
    """Put real records in the store: the actions go through the real pipeline."""

    async def go() -> None:
        async with Runtime(
            executor=OkExecutor(),
            policy=Policy.from_yaml(TEMPLATE_DIR / "default.yaml"),
            approval_handler=AutoApprovalHandler(approver="test"),
            audit=f"sqlite:///{db}",
            session_id=session,
            agent_id=agent,
        ) as runtime:
            for action in actions:
                await runtime.run_one(action)

    asyncio.run(go())


QUICKSTART = [
    Action("read", "crm"),
    Action("bulk_update", "crm", params={"count": 150}),
    Action("delete", "crm"),
]


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    """6 records: the quick start twice, in two sessions with different agents."""
    db = tmp_path / "aegis_audit.db"
    run_actions(db, QUICKSTART, session="session-one", agent="agent-a")
    run_actions(db, QUICKSTART, session="session-two", agent="agent-b")
    return db


def rows_of(out: str) -> list[list[str]]:
    """Plain table output → rows of cells (header dropped)."""
    return [line.split() for line in out.strip().splitlines()[1:]]


def test_audit_table_shows_readme_columns(run_cli: RunCli, trail: Path) -> None:
    result = run_cli("audit")  # default URL: ./aegis_audit.db
    assert result.code == 0, result.err
    header = result.out.splitlines()[0].split()
    assert header == ["ID", "Time", "Session", "Agent", "Action", "Target", "Risk", "Decision",
                      "Result"]  # fmt: skip
    rows = rows_of(result.out)
    assert len(rows) == 6
    # ID, date, time, session, agent, action, target, risk, decision, result
    assert [r[5:] for r in rows[:3]] == [
        ["read", "crm", "LOW", "auto", "success"],
        ["bulk_update", "crm", "HIGH", "approved", "success"],
        ["delete", "crm", "CRITICAL", "blocked", "blocked"],
    ]
    assert "\x1b[" not in result.out


def test_audit_db_option_and_env(
    run_cli: RunCli, trail: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moved = tmp_path / "elsewhere.db"
    trail.rename(moved)
    assert run_cli("audit").code == 3
    assert len(rows_of(run_cli("audit", "--db", f"sqlite:///{moved}").out)) == 6
    monkeypatch.setenv("AEGIS_AUDIT_URL", f"sqlite:///{moved}")
    assert len(rows_of(run_cli("audit").out)) == 6


@pytest.mark.parametrize(
    ("args", "expected_ids"),
    [
        (("--session", "session-two"), [4, 5, 6]),
        (("--agent", "agent-a"), [1, 2, 3]),
        (("--action-type", "bulk*"), [2, 5]),
        (("--risk-level", "HIGH"), [2, 5]),
        (("--risk-level", "low,critical"), [1, 3, 4, 6]),
        (("--result", "blocked"), [3, 6]),
        (("--decision", "approved"), [2, 5]),
        (("--rule", "read_safe"), [1, 4]),
        (("--since", "1h"), [1, 2, 3, 4, 5, 6]),
        (("--since", "2999-01-01T00:00:00+00:00"), []),
        (("--limit", "2"), [5, 6]),
        (("--session", "session-one", "--result", "success", "-n", "1"), [2]),
    ],
)
def test_audit_filters(
    run_cli: RunCli, trail: Path, args: tuple[str, ...], expected_ids: list[int]
) -> None:
    result = run_cli("audit", *args, "--format", "json")
    assert result.code == 0, result.err
    assert [r["id"] for r in json.loads(result.out)] == expected_ids


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--risk-level", "extreme"), "--risk-level"),
        (("--result", "exploded"), "--result"),
        (("--since", "last tuesday"), "--since"),
        (("--limit", "0"), "--limit"),
        (("--limit", "many"), "--limit"),
        (("--format", "xml"), "xml"),
        (("--tail", "--format", "json"), "jsonl"),
        (("--db", "postgres:/nowhere"), "--db"),  # a plain path is a file; a broken URL is not
    ],
)
def test_audit_bad_arguments(
    run_cli: RunCli, trail: Path, args: tuple[str, ...], needle: str
) -> None:
    result = run_cli("audit", *args)
    assert result.code == 2, result.err
    assert needle in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_audit_missing_store_is_exit_3_and_not_created(run_cli: RunCli, tmp_path: Path) -> None:
    for args in (("audit",), ("audit", "verify"), ("stats",)):
        result = run_cli(*args)
        assert result.code == 3
        assert "no audit database" in result.err
    assert not (tmp_path / "aegis_audit.db").exists()


def test_audit_file_without_trail_is_exit_3(run_cli: RunCli, tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "empty.db").execute("create table other (x)").connection.close()
    result = run_cli("audit", "--db", f"sqlite:///{tmp_path / 'empty.db'}")
    assert result.code == 3
    assert "no audit trail" in result.err


def test_formats_round_trip(run_cli: RunCli, trail: Path) -> None:
    as_json = json.loads(run_cli("audit", "-f", "json").out)
    as_jsonl = [json.loads(line) for line in run_cli("audit", "-f", "jsonl").out.splitlines()]
    as_csv = list(csv.DictReader(io.StringIO(run_cli("audit", "-f", "csv").out)))
    assert as_json == as_jsonl
    assert len(as_json) == len(as_csv) == 6
    assert as_json[1]["params"] == {"count": 150}
    assert as_json[1]["approver"] == "test"
    for from_json, from_csv in zip(as_json, as_csv, strict=True):
        assert str(from_json["id"]) == from_csv["id"]
        assert from_json["row_hash"] == from_csv["row_hash"]
        assert from_json["params"] == json.loads(from_csv["params"])
        assert from_json["decision"] == from_csv["decision"]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "table"])
def test_export_to_file(run_cli: RunCli, trail: Path, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"export.{fmt}"
    result = run_cli("audit", "--format", fmt, "-o", str(target), "--result", "success")
    assert result.code == 0, result.err
    assert result.out == ""
    assert "Wrote 4 audit records" in result.err
    text = target.read_text()
    if fmt == "json":
        assert [r["id"] for r in json.loads(text)] == [1, 2, 4, 5]
    elif fmt == "jsonl":
        assert [json.loads(line)["id"] for line in text.splitlines()] == [1, 2, 4, 5]
    elif fmt == "csv":
        assert [r["id"] for r in csv.DictReader(io.StringIO(text))] == ["1", "2", "4", "5"]
    else:
        assert [row[0] for row in rows_of(text)] == ["1", "2", "4", "5"]


def test_export_pages_through_many_records(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aegis.cli import audit_export

    monkeypatch.setattr(audit_export, "PAGE_SIZE", 4)
    db = tmp_path / "aegis_audit.db"
    run_actions(db, [Action("read", f"t{i}") for i in range(10)], session="s")
    result = run_cli("audit", "-f", "jsonl", "-o", "all.jsonl")
    assert result.code == 0
    lines = (tmp_path / "all.jsonl").read_text().splitlines()
    assert [json.loads(line)["target"] for line in lines] == [f"t{i}" for i in range(10)]


def test_verify_intact(run_cli: RunCli, trail: Path) -> None:
    result = run_cli("audit", "verify")
    assert result.code == 0
    assert result.out.startswith("OK: 6 records checked")


def _tamper(db: Path, *statements: str) -> None:
    conn = sqlite3.connect(db)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def test_verify_names_edited_row(run_cli: RunCli, trail: Path) -> None:
    _tamper(trail, "UPDATE aegis_audit SET result = 'success' WHERE id = 3")
    result = run_cli("audit", "verify")
    assert result.code == 1
    assert "TAMPERED" in result.out
    assert "edited: row 3" in result.out
    report = json.loads(run_cli("audit", "verify", "--format", "json").out)
    assert report["ok"] is False and report["edited"] == [3]


def test_verify_names_deleted_row(run_cli: RunCli, trail: Path) -> None:
    _tamper(trail, "DELETE FROM aegis_audit WHERE id = 2")
    result = run_cli("audit", "verify")
    assert result.code == 1
    assert "deleted: row 2" in result.out


def test_verify_names_inserted_row(run_cli: RunCli, trail: Path) -> None:
    conn = sqlite3.connect(trail)
    conn.row_factory = sqlite3.Row
    row = dict(conn.execute("SELECT * FROM aegis_audit WHERE id = 6").fetchone())
    row["id"] = 7
    row["target"] = "forged"
    columns = ", ".join(row)
    conn.execute(
        f"INSERT INTO aegis_audit ({columns}) VALUES ({', '.join('?' for _ in row)})",
        list(row.values()),
    )
    conn.commit()
    conn.close()
    result = run_cli("audit", "verify")
    assert result.code == 1
    assert "inserted: row 7" in result.out


def test_stats_per_rule(run_cli: RunCli, trail: Path) -> None:
    result = run_cli("stats", "--format", "json")
    assert result.code == 0
    by_rule = {s["rule"]: s for s in json.loads(result.out)}
    assert set(by_rule) == {"read_safe", "bulk_ops_need_approval", "no_deletes"}
    assert by_rule["no_deletes"]["total"] == 2
    assert by_rule["no_deletes"]["by_result"] == {"blocked": 2}
    assert by_rule["bulk_ops_need_approval"]["by_decision"] == {"approved": 2}
    table = run_cli("stats", "--agent", "agent-a")
    assert table.code == 0
    lines = {line.split()[0]: line.split() for line in table.out.splitlines()[2:]}
    assert lines["read_safe"][1] == "1"


def _tail_process(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(AEGIS_SCRIPT), "audit", "--tail", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


#: How long a tail test waits for something the tail must print. Only an upper bound for a
#: failing run (a passing one waits for the output itself): a loaded machine may take many
#: seconds to start the script or to get to its next one-second poll.
PATIENCE = 120.0


def _wait_for(predicate: Callable[[], bool], timeout: float = PATIENCE) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _stop(proc: subprocess.Popen[str]) -> str:
    """Ctrl-C, then everything the tail wrote to stderr (it has exited when this returns)."""
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=PATIENCE)
    return err


@pytest.mark.parametrize("fmt", ["table", "jsonl"])
def test_tail_prints_new_records_until_ctrl_c(trail: Path, tmp_path: Path, fmt: str) -> None:
    out_file = tmp_path / f"tail.{fmt}"
    proc = _tail_process(tmp_path, "--format", fmt, "-o", str(out_file), "--limit", "2")
    try:
        _wait_for(lambda: out_file.exists() and "delete" in out_file.read_text())
        run_actions(trail, [Action("read", "late-target")], session="session-three")
        _wait_for(lambda: "late-target" in out_file.read_text())
        # A sentinel record after it: once the sentinel is printed, the tail has polled again
        # after printing 7, so a duplicate of 7 would be there by now (no guessed sleep).
        run_actions(trail, [Action("read", "sentinel")], session="session-three")
        _wait_for(lambda: "sentinel" in out_file.read_text())
        err = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err  # Ctrl-C: the documented exit code
    text = out_file.read_text()
    if fmt == "jsonl":
        ids = [json.loads(line)["id"] for line in text.splitlines()]
    else:
        ids = [int(line.split()[0]) for line in text.splitlines()[1:]]
    assert ids == [5, 6, 7, 8]  # the last two, then the new one and the sentinel, each once


def test_tail_respects_filters_on_stdout(trail: Path, tmp_path: Path) -> None:
    proc = _tail_process(tmp_path, "--format", "jsonl", "--action-type", "delete*")
    lines: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))
    reader.start()
    try:
        # Wait for what the tail printed, not a fixed time: a loaded machine starts it slowly.
        _wait_for(lambda: len(lines) >= 2)  # the backlog: both earlier deletes
        run_actions(trail, [Action("read", "x"), Action("delete", "y")], session="s3")
        # Records print in id order, so once a later matching record (the sentinel) is out,
        # the read "x" before it has had every chance to be wrongly printed: no guessed sleep.
        run_actions(trail, [Action("delete", "sentinel")], session="s3")
        _wait_for(lambda: any("sentinel" in line for line in lines))
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=PATIENCE)
        reader.join(timeout=PATIENCE)  # the reader alone drains stdout, to its end
        assert proc.stderr is not None
        err = proc.stderr.read()
        out = "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err  # Ctrl-C: the documented exit code
    targets = [json.loads(line)["target"] for line in out.splitlines()]
    assert targets == ["crm", "crm", "y", "sentinel"]


def test_tail_holds_back_a_pending_record_until_it_finishes(trail: Path, tmp_path: Path) -> None:
    from aegis.runtime.audit import AuditStore

    out_file = tmp_path / "tail.jsonl"
    proc = _tail_process(tmp_path, "--format", "jsonl", "-o", str(out_file), "--limit", "1")
    action = Action("read", "slow-target")
    decision = Policy.from_yaml(TEMPLATE_DIR / "default.yaml").evaluate(action)

    async def begin(store: AuditStore) -> int:
        await store.open()
        return await store.begin(action, decision, None)

    store = AuditStore(f"sqlite:///{trail}")
    loop = asyncio.new_event_loop()
    try:
        _wait_for(lambda: out_file.exists() and out_file.read_text().count("\n") == 1)
        audit_id = loop.run_until_complete(begin(store))
        # A finished record after the pending one: once the tail prints it, it has polled with
        # the row pending (proof, where a sleep only hoped two polls had happened).
        run_actions(trail, [Action("read", "while-pending")], session="s3")
        _wait_for(lambda: "while-pending" in out_file.read_text())
        assert "slow-target" not in out_file.read_text()
        result = Result(action=action, status=ResultStatus.SUCCESS, decision=decision, attempts=1)
        loop.run_until_complete(store.finish(audit_id, result))
        _wait_for(lambda: "slow-target" in out_file.read_text())
        # And one after it: the tail has polled again since, so a repeat of 7 would be out.
        run_actions(trail, [Action("read", "sentinel")], session="s3")
        _wait_for(lambda: "sentinel" in out_file.read_text())
        err = _stop(proc)
    finally:
        loop.run_until_complete(store.close())
        loop.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err  # Ctrl-C: the documented exit code
    records = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [(r["id"], r["result"]) for r in records] == [
        (6, "blocked"),
        (8, "success"),  # printed while 7 was still pending: held back, not lost
        (7, "success"),
        (9, "success"),
    ]


def test_long_export_shows_progress_on_a_terminal_only(
    run_cli: RunCli, trail: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aegis.cli import audit_export

    monkeypatch.setattr(audit_export, "PROGRESS_MIN_ROWS", 3)
    piped = run_cli("audit", "-f", "jsonl", "-o", "a.jsonl")
    assert "Exporting" not in piped.err
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then treats stderr as a terminal
    shown = run_cli("audit", "-f", "jsonl", "-o", "b.jsonl")
    assert shown.code == 0
    assert "Exporting to b.jsonl" in shown.err
    assert "6/6" in shown.err
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("mysql://u@127.0.0.1:1/db", "driver is not installed"),
        ("nosuchdialect://x", "NoSuchModuleError"),
        ("sqlite:////nonexistent-dir/a.db", "no audit database"),
    ],
)
def test_unreachable_stores_are_exit_3(run_cli: RunCli, url: str, needle: str) -> None:
    for args in (("audit",), ("audit", "verify"), ("stats",)):
        result = run_cli(*args, "--db", url)
        assert result.code == 3, result.err
        assert needle in result.err
        assert len(result.err.strip().splitlines()) == 1
