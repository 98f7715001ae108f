"""Ids by unique prefix: what the audit table shows is accepted back by ``--session``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cli_helpers import RunCli
from test_cli_audit import QUICKSTART, OkExecutor, run_actions

from aegis import Action, Policy, Runtime
from aegis.builtins.templates import TEMPLATE_DIR
from aegis.cli.errors import CliError, ExitCode
from aegis.cli.ids import matching_ids, normalise_prefix, resolve_prefix
from aegis.runtime.audit import AuditStore

ONE = "c15342c3aa0b4f1e9d3e6c1f2b7a9e01"
TWO = "c15342ff00aa4c51b2e0d9f8a7b6c5d4"  # shares 6 characters with ONE
THREE = "7e0d1b2c3a4f5e6d7c8b9a0f1e2d3c4b"


@pytest.fixture
def uuid_trail(tmp_path: Path) -> Path:
    """9 records in three sessions with uuid-hex ids, as a Runtime makes them."""
    db = tmp_path / "aegis_audit.db"
    for session in (ONE, TWO, THREE):
        run_actions(db, QUICKSTART, session=session)
    return db


def ids_of(out: str) -> list[int]:
    return [record["id"] for record in json.loads(out)]


def test_the_session_cell_of_the_table_selects_that_session(
    run_cli: RunCli, uuid_trail: Path
) -> None:
    table = run_cli("audit")
    shown = {line.split()[3] for line in table.out.splitlines()[1:]}  # ID, date, time, Session
    assert shown == {ONE[:8] + "...", TWO[:8] + "...", THREE[:8] + "..."}
    for cell, session, expected in (
        (ONE[:8] + "...", ONE, [1, 2, 3]),
        (TWO[:8], TWO, [4, 5, 6]),
        (THREE[:8] + "\u2026", THREE, [7, 8, 9]),
    ):
        result = run_cli("audit", "--session", cell, "-f", "json")
        assert result.code == 0, result.err
        assert ids_of(result.out) == expected
        assert {r["session_id"] for r in json.loads(result.out)} == {session}


def test_full_id_and_longer_prefix_work(run_cli: RunCli, uuid_trail: Path) -> None:
    assert ids_of(run_cli("audit", "--session", ONE, "-f", "json").out) == [1, 2, 3]
    assert ids_of(run_cli("audit", "--session", TWO[:20], "-f", "json").out) == [4, 5, 6]


def test_ambiguous_prefix_is_a_one_line_usage_error(run_cli: RunCli, uuid_trail: Path) -> None:
    for command in ("audit", "stats"):
        result = run_cli(command, "--session", "c15342")
        assert result.code == 2
        assert result.out == ""
        assert result.err == (
            f"aegis: error: --session 'c15342': 2 sessions start with it ({ONE}, {TWO}); "
            "give more characters\n"
        )


def test_stats_accepts_a_prefix(run_cli: RunCli, uuid_trail: Path) -> None:
    result = run_cli("stats", "--session", THREE[:8], "-f", "json")
    assert result.code == 0, result.err
    assert sum(row["total"] for row in json.loads(result.out)) == 3


def test_unknown_session_matches_nothing_rather_than_failing(
    run_cli: RunCli, uuid_trail: Path
) -> None:
    result = run_cli("audit", "--session", "ffff")
    assert (result.code, result.out, result.err) == (0, "", "no audit records match\n")


def test_exact_id_wins_over_a_longer_one(run_cli: RunCli, tmp_path: Path) -> None:
    db = tmp_path / "aegis_audit.db"
    run_actions(db, QUICKSTART[:1], session="s1")
    run_actions(db, QUICKSTART[:2], session="s10")
    assert ids_of(run_cli("audit", "--session", "s1", "-f", "json").out) == [1]
    assert ids_of(run_cli("audit", "--session", "s10", "-f", "json").out) == [2, 3]


def test_store_prefix_lookup_is_exact_about_case_and_wildcards(tmp_path: Path) -> None:
    db = tmp_path / "aegis_audit.db"
    for session in ("ABC-1", "abc-2", "a%c-3", "a_c-4"):
        run_actions(db, QUICKSTART[:1], session=session)
    store = AuditStore(f"sqlite:///{db}")
    assert store.session_ids("abc") == ["abc-2"]  # SQLite's LIKE would also give ABC-1
    assert store.session_ids("a%") == ["a%c-3"]
    assert store.session_ids("a_") == ["a_c-4"]
    assert store.session_ids() == ["ABC-1", "a%c-3", "a_c-4", "abc-2"]
    assert store.session_ids("a", limit=2) == ["a%c-3", "a_c-4"]


def test_resolve_prefix_rules() -> None:
    ids = ["c15342c3aa", "c15342ff00", "7e0d1b2c3a"]
    assert resolve_prefix("7e", ids, what="request", option="ID") == "7e0d1b2c3a"
    assert resolve_prefix(" c15342c3... ", ids, what="request", option="ID") == "c15342c3aa"
    assert matching_ids("c15342", ids) == ["c15342c3aa", "c15342ff00"]
    assert matching_ids("c15342c3aa", [*ids, "c15342c3aa-x"]) == ["c15342c3aa"]
    assert normalise_prefix("abc\u2026") == "abc"
    with pytest.raises(CliError) as missing:
        resolve_prefix("zz", ids, what="request", option="ID", missing_code=ExitCode.CHECK_FAILED)
    assert missing.value.code == ExitCode.CHECK_FAILED
    assert missing.value.message == "ID 'zz': no request has this id or starts with it"
    with pytest.raises(CliError) as empty:
        resolve_prefix("...", ids, what="request", option="ID")
    assert empty.value.code == ExitCode.USAGE
    many = [f"ab{i}" for i in range(5)]
    with pytest.raises(CliError) as ambiguous:
        resolve_prefix("ab", many, what="request", option="ID")
    assert ambiguous.value.message == (
        "ID 'ab': 5 requests start with it (ab0, ab1, ab2 and 2 more); give more characters"
    )


@pytest.mark.postgres
def test_session_prefix_on_postgres(run_cli: RunCli, pg_url: str) -> None:
    for session in (ONE, TWO):
        asyncio.run(_read_once(pg_url, session))
    assert ids_of(run_cli("audit", "--db", pg_url, "--session", TWO[:8], "-f", "json").out) == [2]
    upper = run_cli("audit", "--db", pg_url, "--session", ONE[:8].upper())
    assert (upper.code, upper.out) == (0, "")  # case-sensitive, as on SQLite
    assert AuditStore(pg_url).session_ids("c15342") == [ONE, TWO]


async def _read_once(url: str, session: str) -> None:
    async with Runtime(
        executor=OkExecutor(),
        policy=Policy.from_yaml(TEMPLATE_DIR / "default.yaml"),
        audit=url,
        session_id=session,
    ) as runtime:
        await runtime.run_one(Action("read", "crm"))


@pytest.mark.parametrize("value", ["", "...", "  \u2026 "])
@pytest.mark.parametrize("command", ["audit", "stats"])
def test_empty_session_is_one_line_usage_error(
    run_cli: RunCli, uuid_trail: Path, command: str, value: str
) -> None:
    result = run_cli(command, "--session", value)
    assert result.code == 2
    assert result.err == f"aegis: error: --session {value!r}: empty id\n"


def test_session_prefix_on_a_missing_store_is_exit_3(run_cli: RunCli) -> None:
    result = run_cli("audit", "--session", "c153")
    assert result.code == 3
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
