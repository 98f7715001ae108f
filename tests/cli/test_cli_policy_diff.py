"""``aegis diff OLD NEW``: decisions that change, sampled from the rules and replayed from a
real audit database (written by ``aegis demo``'s real Runtime on SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import RunCli

from aegis.builtins.templates import TEMPLATE_DIR

DEFAULT = TEMPLATE_DIR / "default.yaml"


@pytest.fixture
def stricter(tmp_path: Path) -> Path:
    """The default template with reads blocked and the bulk threshold lowered to 200."""
    text = DEFAULT.read_text()
    text = text.replace(
        "risk_level: low\n    approval: auto", "risk_level: low\n    approval: block"
    )
    text = text.replace("param_gt: { count: 100 }", "param_gt: { count: 200 }")
    assert text != DEFAULT.read_text()
    path = tmp_path / "new.yaml"
    path.write_text(text)
    return path


def test_sampled_diff_finds_changed_rules_and_thresholds(stricter: Path, run_cli: RunCli) -> None:
    result = run_cli("diff", str(DEFAULT), str(stricter), "-f", "json")
    assert result.code == 0, result.err
    sampled = json.loads(result.out)["sampled"]
    kinds = {(c["old"], c["new"]): c for c in sampled["changes"]}
    assert ("auto", "block") in kinds  # reads now blocked
    [example, *_] = kinds[("auto", "block")]["examples"]
    assert example["action_type"].startswith("read")
    # count 101 was approve (bulk rule), now falls to the defaults (also approve, other rule)
    moved = kinds[("approve", "approve")]["examples"]
    assert any(e["params"] == {"count": 101} for e in moved)
    assert sampled["changed"] < sampled["total"]  # deletes did not change


def test_same_policy_changes_nothing(run_cli: RunCli) -> None:
    result = run_cli("diff", str(DEFAULT), str(DEFAULT))
    assert result.code == 0
    assert "sampled from both policies' rules: 0 of " in result.out


def test_replay_counts_recorded_actions_by_old_and_new_decision(
    stricter: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    for _ in range(2):
        assert run_cli("demo", "--db", db, "--answer", "yes").code == 0
    result = run_cli("diff", str(DEFAULT), str(stricter), "--replay", "--db", db, "--since", "1h")
    assert result.code == 0, result.err
    text = result.out
    assert "replayed from the audit log since" in text
    assert ": 4 of 6 actions change decision" in text.split("replayed", 1)[1]
    replay = text.split("replayed", 1)[1]
    assert "  auto -> block: 2" in replay
    assert "      read:crm: auto (rule 'read_safe', LOW) -> block (rule 'read_safe', LOW)" in replay
    assert "  approve -> approve: 2" in replay  # count=150 now under the new threshold
    as_json = run_cli("diff", str(DEFAULT), str(stricter), "--replay", "--db", db, "-f", "json")
    replayed = json.loads(as_json.out)["replayed"]
    assert (replayed["total"], replayed["changed"]) == (6, 4)


def test_replay_since_excludes_older_records(
    stricter: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    assert run_cli("demo", "--db", db, "--answer", "yes").code == 0
    future = run_cli(
        "diff", str(DEFAULT), str(stricter), "--replay", "--db", db,
        "--since", "2999-01-01T00:00+00:00", "-f", "json",
    )  # fmt: skip
    assert json.loads(future.out)["replayed"]["total"] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nope.yaml", str(DEFAULT)], "nope.yaml: no such file"),
        ([str(DEFAULT), str(DEFAULT), "--replay", "--since", "yesterday"], "--since 'yesterday'"),
        ([str(DEFAULT), str(DEFAULT), "--examples", "-1"], "--examples"),
    ],
)
def test_errors_are_one_line(argv: list[str], message: str, run_cli: RunCli) -> None:
    result = run_cli("diff", *argv)
    assert result.code == 2
    assert message in result.err
    assert result.err.count("\n") == 1


def test_replay_without_a_database_is_exit_3(tmp_path: Path, run_cli: RunCli) -> None:
    missing = tmp_path / "none.db"
    result = run_cli("diff", str(DEFAULT), str(DEFAULT), "--replay", "--db", str(missing))
    assert result.code == 3
    assert "no audit database" in result.err
    assert not missing.exists()
