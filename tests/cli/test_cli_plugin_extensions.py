"""What plugins add reaches the CLI: templates for init, conditions for schema/validate/simulate."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import RunCli

from aegis import hookimpl
from aegis.core.action import Action
from aegis.core.condition import CompileContext, EvalContext, Tristate

PluginFixture = Callable[..., str]

TEMPLATE = """\
# Team policy from a plugin: comments survive `aegis init`.
version: "1"
defaults: {risk_level: high, approval: block}  # nothing unlisted runs
rules:
  - name: even_batches
    match: {type: "batch*"}
    conditions:
      target_is: {name: payroll}
    risk_level: low
    approval: auto
"""


def target_is(argument: dict[str, str], ctx: CompileContext) -> Callable[..., Tristate]:
    wanted = argument["name"]

    def check(action: Action, ectx: EvalContext) -> Tristate:
        return action.target == wanted

    return check


class TeamPlugin:
    def __init__(self, template: Path) -> None:
        self.template = template

    @hookimpl
    def aegis_register_policy_templates(self, register: Any) -> None:
        register("team", self.template, description="the team's policy")
        register("not-a-file", {"rules": []}, description="registered wrongly")

    @hookimpl
    def aegis_register_conditions(self, register: Any) -> None:
        register(
            "target_is",
            target_is,
            schema={
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
                "additionalProperties": False,
            },
            description="the action's target equals name",
        )


@pytest.fixture
def team(aegis_plugin: PluginFixture, tmp_path: Path) -> None:
    template = tmp_path / "templates" / "team.yaml"
    template.parent.mkdir()
    template.write_text(TEMPLATE)
    aegis_plugin(TeamPlugin(template), name="team-plugin")


def test_init_uses_plugin_template(run_cli: RunCli, team: None, tmp_path: Path) -> None:
    listed = run_cli("init", "--list")
    assert "team" in listed.out and "team-plugin" in listed.out
    result = run_cli("init", "--template", "team", "--set", "defaults.risk_level=critical")
    assert result.code == 0, result.err
    text = (tmp_path / "policy.yaml").read_text()
    assert "# Team policy from a plugin" in text and "# nothing unlisted runs" in text
    assert "risk_level: critical" in text


def test_init_rejects_template_that_is_not_a_file(run_cli: RunCli, team: None) -> None:
    result = run_cli("init", "--template", "not-a-file")
    assert result.code == 4
    assert "team-plugin" in result.err and "expected a file path" in result.err


def test_schema_validate_simulate_know_plugin_condition(
    run_cli: RunCli, team: None, tmp_path: Path
) -> None:
    schema = json.loads(run_cli("schema").out)
    assert "target_is" in json.dumps(schema)
    (tmp_path / "p.yaml").write_text(TEMPLATE)
    assert run_cli("validate", "p.yaml").code == 0
    rows = json.loads(
        run_cli("simulate", "p.yaml", "batch_run:payroll", "batch_run:ledger", "-f", "json").out
    )
    assert [(r["matched_rule"], r["approval"]) for r in rows] == [
        ("even_batches", "auto"),
        (None, "block"),
    ]


def test_policy_using_condition_of_missing_plugin_is_invalid(
    run_cli: RunCli, tmp_path: Path
) -> None:
    (tmp_path / "p.yaml").write_text(TEMPLATE)
    result = run_cli("validate", "p.yaml")
    assert result.code == 1
    assert "target_is" in result.out
    assert result.out.startswith("p.yaml:8:7: rules[0].conditions.target_is: unknown condition")
