"""init / validate / schema / simulate, in-process."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cli_helpers import RunCli

from aegis import Policy

INVALID_POLICY = """\
version: "1"
defaults:
  risk_level: medium
  approval: approve
rules:
  - name: read_safe
    match: { type: "read*" }
    risk_level: low
    approval: sometimes
"""

ISSUE_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): .+$")


# --- init -----------------------------------------------------------------------------------


def test_init_writes_commented_default_that_validates(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("init")
    assert result.code == 0, result.err
    text = (tmp_path / "policy.yaml").read_text()
    assert "# Rules are checked top to bottom" in text
    assert "param_gt: { count: 100 }   # only when" in text
    policy = Policy.from_yaml(tmp_path / "policy.yaml")
    assert [r.name for r in policy.rules] == ["read_safe", "bulk_ops_need_approval", "no_deletes"]
    assert "3 rules" in result.out


def test_init_refuses_to_overwrite_without_force(run_cli: RunCli, tmp_path: Path) -> None:
    target = tmp_path / "policy.yaml"
    target.write_text("# mine\n")
    result = run_cli("init")
    assert result.code == 2
    assert "already exists" in result.err and "--force" in result.err
    assert target.read_text() == "# mine\n"
    assert run_cli("init", "--force").code == 0
    assert "read_safe" in target.read_text()


def test_init_into_directory_and_custom_path(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    assert run_cli("init", "conf").code == 0
    assert (tmp_path / "conf" / "policy.yaml").is_file()
    assert run_cli("init", "other.yaml").code == 0
    assert (tmp_path / "other.yaml").is_file()


def test_init_set_keeps_comments_and_validates(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli(
        "init", "--set", "defaults.approval=block", "--set", "rules.1.conditions.param_gt.count=500"
    )
    assert result.code == 0, result.err
    text = (tmp_path / "policy.yaml").read_text()
    assert "# Applied when no rule matches" in text
    assert "# only when the action's `count` param is > 100" in text
    policy = Policy.from_yaml(tmp_path / "policy.yaml")
    assert policy.defaults.approval.value == "block"
    assert "count: 500" in text


def test_init_set_producing_invalid_policy_writes_nothing(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("init", "--set", "defaults.approval=sometimes")
    assert result.code == 1
    assert "approval" in result.err
    assert not (tmp_path / "policy.yaml").exists()


def test_init_unknown_template_lists_known(run_cli: RunCli) -> None:
    result = run_cli("init", "--template", "nope")
    assert result.code == 2
    assert "'nope'" in result.err and "default" in result.err


def test_init_list(run_cli: RunCli) -> None:
    result = run_cli("init", "--list")
    assert result.code == 0
    assert "default" in result.out and "quick-start" in result.out
    assert not Path("policy.yaml").exists()


# --- validate -------------------------------------------------------------------------------


def test_validate_ok(run_cli: RunCli, tmp_path: Path) -> None:
    run_cli("init")
    result = run_cli("validate", "policy.yaml")
    assert result.code == 0
    assert result.out.startswith("policy.yaml: OK (3 rules")


def test_validate_invalid_prints_file_line_col_and_exits_1(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(INVALID_POLICY)
    result = run_cli("validate", "bad.yaml")
    assert result.code == 1
    lines = result.out.strip().splitlines()
    assert lines
    match = ISSUE_LINE.match(lines[0])
    assert match, lines[0]
    assert match["file"].endswith("bad.yaml")
    assert match["line"] == "9"
    assert "Traceback" not in result.out + result.err


def test_validate_yaml_syntax_error_is_located(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text('version: "1"\nrules:\n  - name: [unclosed\n')
    result = run_cli("validate", "broken.yaml")
    assert result.code == 1
    assert ISSUE_LINE.match(result.out.splitlines()[0]), result.out
    assert "Traceback" not in result.out + result.err


def test_validate_missing_file_is_usage_error(run_cli: RunCli, tmp_path: Path) -> None:
    run_cli("init")
    result = run_cli("validate", "policy.yaml", "missing.yaml")
    assert result.code == 2
    assert "missing.yaml: error: no such file" in result.out
    assert "1 of 2 files valid" in result.out


def test_validate_invalid_and_missing_reports_both(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(INVALID_POLICY)
    result = run_cli("validate", "bad.yaml", "missing.yaml")
    assert result.code == 2
    assert "bad.yaml:9:" in result.out and "missing.yaml" in result.out


def test_validate_needs_a_file(run_cli: RunCli) -> None:
    result = run_cli("validate")
    assert result.code == 2
    assert result.err.startswith("aegis: error:")


# --- schema ---------------------------------------------------------------------------------


def test_schema_stdout_and_file(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("schema")
    assert result.code == 0
    schema = json.loads(result.out)
    assert "param_gt" in json.dumps(schema)
    assert run_cli("schema", "-o", "schema.json").code == 0
    assert json.loads((tmp_path / "schema.json").read_text()) == schema


def test_schema_validates_the_default_template(run_cli: RunCli, tmp_path: Path) -> None:
    import jsonschema
    from ruamel.yaml import YAML

    schema = json.loads(run_cli("schema").out)
    run_cli("init")
    jsonschema.validate(YAML(typ="safe").load(tmp_path / "policy.yaml"), schema)


# --- simulate -------------------------------------------------------------------------------


@pytest.fixture
def policy_file(run_cli: RunCli, tmp_path: Path) -> Path:
    assert run_cli("init").code == 0
    return tmp_path / "policy.yaml"


def test_simulate_quickstart_decisions(run_cli: RunCli, policy_file: Path) -> None:
    result = run_cli(
        "simulate", "policy.yaml", "read:crm", "bulk_update:crm", "delete:db",
        "--param", "count=150", "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert [
        (r["action_type"], r["risk_level"], r["approval"], r["matched_rule"]) for r in rows
    ] == [
        ("read", "LOW", "auto", "read_safe"),
        ("bulk_update", "HIGH", "approve", "bulk_ops_need_approval"),
        ("delete", "CRITICAL", "block", "no_deletes"),
    ]
    assert rows[1]["params"] == {"count": 150}  # parsed as a number, so param_gt applies


def test_simulate_param_below_threshold_falls_to_defaults(
    run_cli: RunCli, policy_file: Path
) -> None:
    result = run_cli("simulate", "policy.yaml", "bulk_update:crm", "-p", "count=5", "-f", "json")
    row = json.loads(result.out)[0]
    assert row["matched_rule"] is None
    assert (row["risk_level"], row["approval"]) == ("MEDIUM", "approve")


def test_simulate_shows_unknown_conditions(run_cli: RunCli, policy_file: Path) -> None:
    result = run_cli("simulate", "policy.yaml", "bulk_update:crm", "-f", "json")
    row = json.loads(result.out)[0]
    assert row["unknown_conditions"]  # count missing: unknown, and on an approve rule it matches
    assert row["approval"] == "approve"


def test_simulate_table_is_plain_when_piped(run_cli: RunCli, policy_file: Path) -> None:
    result = run_cli("simulate", "policy.yaml", "read:crm", "delete:db")
    assert result.code == 0
    assert "\x1b[" not in result.out
    lines = result.out.splitlines()
    assert lines[1].split() == ["Action", "Target", "Risk", "Approval", "Rule", "Unknown", "Reason"]
    assert lines[2].split()[:5] == ["read", "crm", "LOW", "auto", "read_safe"]
    assert lines[3].split()[:5] == ["delete", "db", "CRITICAL", "block", "no_deletes"]


def test_simulate_at_time_and_agent(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        'version: "1"\ndefaults: {risk_level: low, approval: auto}\nrules:\n'
        "  - name: night\n    match: {type: 'write*', agent: 'bot-*'}\n"
        "    conditions: {time_after: '18:00'}\n    risk_level: critical\n    approval: block\n"
    )
    args = ("simulate", "p.yaml", "write:crm", "-f", "json", "--agent", "bot-1")
    night = json.loads(run_cli(*args, "--at", "2026-03-20T23:00:00+00:00").out)[0]
    day = json.loads(run_cli(*args, "--at", "2026-03-20T10:00:00+00:00").out)[0]
    other = json.loads(
        run_cli("simulate", "p.yaml", "write:crm", "-f", "json", "--agent", "human",
                "--at", "2026-03-20T23:00:00+00:00").out
    )[0]  # fmt: skip
    assert night["matched_rule"] == "night" and night["approval"] == "block"
    assert day["matched_rule"] is None and day["approval"] == "auto"
    assert other["matched_rule"] is None


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("read",), "expected type:target"),
        (("read:crm", "--param", "count"), "expected key=value"),
        (("read:crm", "--at", "soon"), "--at 'soon'"),
        ((), "at least one action"),
    ],
)
def test_simulate_bad_arguments(
    run_cli: RunCli, policy_file: Path, args: tuple[str, ...], needle: str
) -> None:
    result = run_cli("simulate", "policy.yaml", *args)
    assert result.code == 2
    assert needle in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_simulate_missing_and_invalid_policy(run_cli: RunCli, tmp_path: Path) -> None:
    missing = run_cli("simulate", "nope.yaml", "read:crm")
    assert missing.code == 2 and "nope.yaml: no such file" in missing.err
    (tmp_path / "bad.yaml").write_text(INVALID_POLICY)
    invalid = run_cli("simulate", "bad.yaml", "read:crm")
    assert invalid.code == 1
    assert ISSUE_LINE.match(invalid.err.splitlines()[0])
