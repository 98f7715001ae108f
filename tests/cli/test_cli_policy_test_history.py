"""``aegis test`` cases for stateful policies: the history declared before the action."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import RunCli

POLICY = """\
version: "1"
defaults: { risk_level: low, approval: auto }
rules:
  - name: delete_rate
    match: { type: "delete*" }
    conditions: { rate_limit: { max: 3, per: 1m, key: agent } }
    risk_level: high
    approval: block
  - name: no_leak
    match: { type: "send*" }
    conditions: { sequence: ["read_secret*", "send*"] }
    risk_level: critical
    approval: block
"""


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    (tmp_path / "limits.yaml").write_text(POLICY)
    return tmp_path


def test_history_decides_stateful_cases(policy_dir: Path, run_cli: RunCli) -> None:
    (policy_dir / "limits.cases.yaml").write_text(
        """\
cases:
  - action: delete_x:crm
    agent: bot
    expect: { approval: auto, rule: null, unknown: [] }
  - action: delete_x:crm
    agent: bot
    history: [{ action: delete_y:crm, times: 3, ago: 10s }]
    expect: { approval: block, rule: delete_rate }
  - action: delete_x:crm
    agent: bot
    history: [{ action: delete_y:crm, times: 3, ago: 2m }]
    expect: { approval: auto }
  - action: send_mail:someone
    session: s
    history: [{ action: read_secret:vault }]
    expect: { approval: block, rule: no_leak }
  - action: send_mail:someone
    session: s
    history: [{ action: read_secret:vault, session: other }]
    expect: { approval: auto }
"""
    )
    result = run_cli("test", str(policy_dir))
    assert result.code == 0, result.out
    assert "5 of 5 cases passed" in result.out


def test_a_wrong_expectation_under_history_fails_with_the_history_named(
    policy_dir: Path, run_cli: RunCli
) -> None:
    (policy_dir / "limits.cases.yaml").write_text(
        """\
cases:
  - action: delete_x:crm
    agent: bot
    history: [{ action: delete_y:crm, times: 2 }]
    expect: { approval: block }
"""
    )
    result = run_cli("test", str(policy_dir))
    assert result.code == 1
    assert "after 2 actions of history" in result.out
    assert "approval: expected block, got auto" in result.out


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{ action: delete_y }", "action 'delete_y': expected type:target"),
        ("{ action: delete_y:crm, times: 0 }", "times: expected a whole number"),
        ("{ action: delete_y:crm, ago: soon }", "ago: 'soon' is not a duration"),
        ("{ action: delete_y:crm, when: 1 }", "unknown key 'when'"),
    ],
)
def test_a_bad_history_entry_is_a_located_error(
    policy_dir: Path, run_cli: RunCli, entry: str, message: str
) -> None:
    (policy_dir / "limits.cases.yaml").write_text(
        f"cases:\n  - action: delete_x:crm\n    history:\n      - {entry}\n"
        "    expect: { approval: auto }\n"
    )
    result = run_cli("test", str(policy_dir))
    assert result.code == 1
    assert f"limits.cases.yaml:4: case 1: history[0]: {message}" in result.out, result.out
