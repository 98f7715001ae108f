"""``aegis test``: cases files next to a policy, a diff per failing case, exit codes for CI."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import RunCli

POLICY = """\
version: "1"
timezone: Europe/Berlin
defaults: { risk_level: medium, approval: approve }
rules:
  - name: no_deletes
    match: { type: "delete*" }
    risk_level: critical
    approval: block
  - name: office_hours_writes
    match: { type: "write*", agent: "bot-*" }
    conditions: { time_after: "08:00", time_before: "18:00", param_lte: { count: 10 } }
    risk_level: low
    approval: auto
  - name: reads
    match: { type: "read*" }
    risk_level: low
    approval: auto
"""


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    (tmp_path / "team.yaml").write_text(POLICY)
    return tmp_path


def _cases(directory: Path, body: str, name: str = "team") -> Path:
    path = directory / f"{name}.cases.yaml"
    path.write_text(body)
    return path


def test_passing_cases_exit_0_with_a_summary(policy_dir: Path, run_cli: RunCli) -> None:
    _cases(
        policy_dir,
        """\
cases:
  - action: read:crm
    expect: { approval: auto, rule: reads, risk: low }
  - action: DELETE_user:crm
    expect: { approval: block, matched_rule: no_deletes, risk_level: CRITICAL }
  - action: write:crm                       # 09:00 UTC is 10:00 in Berlin: inside the window
    params: { count: 3 }
    agent: bot-1
    at: "2026-03-18T09:00:00+00:00"
    expect: { approval: auto, rule: office_hours_writes }
  - action: write:crm                       # no zone: the policy's timezone (Berlin)
    params: { count: 3 }
    agent: bot-1
    at: "2026-03-18T18:30:00"
    expect: { approval: approve, rule: null }
  - action: write:crm                       # count missing on an auto rule: falls through
    agent: bot-1
    at: "2026-03-18T10:00:00"
    expect: { approval: approve, rule: null, unknown: [param_lte] }
""",
    )
    result = run_cli("test", str(policy_dir))
    assert result.code == 0, result.out
    assert result.out.strip().splitlines()[-1] == "PASS: 5 of 5 cases passed in 1 file"


def test_a_failing_case_prints_a_diff_with_file_and_line_and_exits_1(
    policy_dir: Path, run_cli: RunCli
) -> None:
    cases = _cases(
        policy_dir,
        """\
cases:
  - action: read:crm
    expect: { approval: auto }
  - action: write:crm
    params: { count: 50 }
    agent: bot-1
    at: "2026-03-18T10:00:00"
    expect: { approval: auto, rule: office_hours_writes, risk: LOW }
""",
    )
    result = run_cli("test", str(policy_dir / "team.yaml"))
    assert result.code == 1
    lines = result.out.splitlines()
    assert lines[0] == (
        f'FAIL {cases}:4 case 2: write:crm [params {{"count": 50}}, agent bot-1, '
        "at 2026-03-18T10:00:00]"
    )
    assert "    approval: expected auto, got approve" in lines
    assert "    matched_rule: expected office_hours_writes, got null (the defaults)" in lines
    assert "    risk_level: expected LOW, got MEDIUM" in lines
    assert any(line.startswith("    reason: ") for line in lines)
    assert lines[-1] == "FAIL: 1 of 2 cases passed in 1 file, 1 failed"


def test_verbose_lists_passing_cases(policy_dir: Path, run_cli: RunCli) -> None:
    cases = _cases(policy_dir, "cases:\n  - action: read:crm\n    expect: { approval: auto }\n")
    result = run_cli("test", str(cases), "-v")
    assert result.code == 0
    assert f"PASS {cases}:2 read:crm" in result.out


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "cases:\n  - action: read:crm\n    expect: { aproval: auto }\n",
            ":3: case 1: expect: unknown key 'aproval'",
        ),
        (
            "cases:\n  - action: read\n    expect: { approval: auto }\n",
            ":2: case 1: action 'read': expected type:target",
        ),
        (
            "cases:\n  - action: read:crm\n    expect: { approval: maybe }\n",
            ":3: case 1: expect.approval: not an approval mode",
        ),
        (
            "cases:\n  - action: read:crm\n    expect: { risk: huge }\n",
            ":3: case 1: expect.risk: not a risk level",
        ),
        ("cases:\n  - action: read:crm\n", ":2: case 1: 'expect' must map"),
        (
            "cases:\n  - action: read:crm\n    histroy: []\n    expect: { approval: auto }\n",
            ":3: case 1: unknown key 'histroy'",
        ),
        (
            "cases:\n  - action: read:crm\n    at: yesterday\n    expect: { approval: auto }\n",
            ":2: case 1: at 'yesterday': expected an ISO date/time",
        ),
        ("cases: []\n", ":1: 'cases' must be a non-empty list"),
        ("cases: [\n", ": not valid YAML"),
        (
            "template: nope\ncases:\n  - action: read:crm\n    expect: { approval: auto }\n",
            ":1: template: no such template 'nope'",
        ),
        (
            "policy: missing.yaml\ncases:\n  - action: read:crm\n    expect: { approval: auto }\n",
            ": policy ",
        ),
    ],
)
def test_broken_cases_files_are_one_error_line_and_exit_1(
    policy_dir: Path, run_cli: RunCli, body: str, message: str
) -> None:
    cases = _cases(policy_dir, body)
    result = run_cli("test", str(cases))
    assert result.code == 1
    [error, summary] = result.out.splitlines()
    assert error.startswith(f"ERROR {cases}")
    assert message in error
    assert summary.endswith("1 file could not be run")
    assert "Traceback" not in result.out + result.err


def test_an_invalid_policy_is_reported_not_raised(policy_dir: Path, run_cli: RunCli) -> None:
    (policy_dir / "team.yaml").write_text(
        "version: '1'\nrules:\n  - name: x\n    approval: sometimes\n"
    )
    _cases(policy_dir, "cases:\n  - action: read:crm\n    expect: { approval: auto }\n")
    result = run_cli("test", str(policy_dir))
    assert result.code == 1
    assert "policy is invalid" in result.out.splitlines()[0]


def test_a_policy_without_cases_and_a_missing_path_are_usage_errors(
    policy_dir: Path, run_cli: RunCli
) -> None:
    lonely = run_cli("test", str(policy_dir / "team.yaml"))
    assert lonely.code == 2
    assert "no test cases found (expected team.cases.yaml next to it)" in lonely.err
    missing = run_cli("test", str(policy_dir / "nope"))
    assert missing.code == 2
    assert missing.err.strip().count("\n") == 0
    empty = run_cli("test", str(policy_dir))
    assert empty.code == 2
    assert "no *.cases.yaml files found" in empty.err


def test_one_broken_file_does_not_hide_the_others(policy_dir: Path, run_cli: RunCli) -> None:
    _cases(policy_dir, "cases:\n  - action: read:crm\n    expect: { approval: auto }\n")
    _cases(policy_dir, "template: crm\ncases: nope\n", name="other")
    result = run_cli("test", str(policy_dir))
    assert result.code == 1
    assert result.out.splitlines()[-1] == (
        "FAIL: 1 of 1 cases passed in 2 files, 1 file could not be run"
    )


def test_template_and_policy_keys_name_what_is_tested(tmp_path: Path, run_cli: RunCli) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "p.yaml").write_text(POLICY)
    _cases(
        tmp_path,
        "policy: sub/p.yaml\ncases:\n  - action: delete:x\n    expect: { approval: block }\n",
        name="a",
    )
    _cases(
        tmp_path,
        "template: crm\ncases:\n  - action: delete_contact:x\n    expect: { rule: no_deletes }\n",
        name="b",
    )
    result = run_cli("test", str(tmp_path))
    assert result.code == 0, result.out
    assert "2 of 2 cases passed in 2 files" in result.out


def test_hidden_directories_are_not_searched(policy_dir: Path, run_cli: RunCli) -> None:
    _cases(policy_dir, "cases:\n  - action: read:crm\n    expect: { approval: auto }\n")
    hidden = policy_dir / ".venv"
    hidden.mkdir()
    (hidden / "team.yaml").write_text(POLICY)
    _cases(hidden, "cases:\n  - action: read:crm\n    expect: { approval: block }\n")
    result = run_cli("test", str(policy_dir))
    assert result.code == 0, result.out
    assert "1 of 1 cases passed in 1 file" in result.out
