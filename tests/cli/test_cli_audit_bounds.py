"""Numbers past what a date or a database id can hold: an answer or a usage error (exit 2),
never "internal error" (exit 4). The exit codes are the README's table."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cli_helpers import RunCli

from aegis import Action, Policy, Runtime
from aegis.builtins.templates import TEMPLATE_DIR
from aegis.cli.parsing import parse_since
from aegis.runtime.approval.handlers import AutoApprovalHandler
from plugin_helpers import Recorder

HUGE = str(2**70)


@pytest.fixture
async def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    async with Runtime(
        executor=Recorder(),
        policy=Policy.from_yaml(TEMPLATE_DIR / "default.yaml"),
        approval_handler=AutoApprovalHandler(approver="test"),
        audit=url,
    ) as runtime:
        for target in ("a", "b", "c"):
            await runtime.run_one(Action("read", target))
    return url


def _ids(out: str) -> list[int]:
    return [r["id"] for r in json.loads(out)]


def test_a_limit_past_every_record_shows_them_all(run_cli: RunCli, db: str) -> None:
    shown = run_cli("audit", "--db", db, "-n", HUGE, "--format", "json")
    assert (shown.code, shown.err) == (0, "")
    assert _ids(shown.out) == [1, 2, 3]
    table = run_cli("audit", "--db", db, "--limit", HUGE)
    assert table.code == 0 and "more: use --limit" not in table.err


@pytest.mark.parametrize("span", ["99999999999d", f"{HUGE}s", f"{HUGE}w"])
@pytest.mark.parametrize("command", ["audit", "stats"])
def test_a_span_further_back_than_any_date_means_everything(
    run_cli: RunCli, db: str, span: str, command: str
) -> None:
    shown = run_cli(command, "--db", db, "--since", span, "--format", "json")
    assert (shown.code, shown.err) == (0, "")
    records = json.loads(shown.out)
    total = len(records) if command == "audit" else sum(s["total"] for s in records)
    assert total == 3


def test_parse_since_clamps_to_the_first_moment() -> None:
    assert parse_since(f"{HUGE}d") == dt.datetime.min.replace(tzinfo=dt.UTC)


def test_prove_of_an_id_no_record_can_have_is_a_failed_check(
    run_cli: RunCli, db: str, tmp_path: Path
) -> None:
    assert run_cli("keys", "generate", "--out", str(tmp_path)).code == 0
    key = tmp_path / "aegis.key"
    cps = tmp_path / "cps"
    cps.mkdir()
    made = run_cli("audit", "checkpoint", "--db", db, "--key", str(key), "-o", str(cps))
    assert made.code == 0, made.err
    proof = run_cli("audit", "prove", HUGE, "--db", db, "--checkpoint", str(cps))
    assert proof.code == 1 and f"no audit record {HUGE}" in proof.err
