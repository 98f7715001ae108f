"""Every built-in policy template, run against its test cases in ``policies/<name>.cases.yaml``.

Each case goes through ``aegis simulate`` (in-process) on the file ``aegis init --template``
writes, so the template, the CLI's parameter parsing and the decision are checked together.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from aegis import plugins
from aegis.cli import main
from aegis.core.policy import Policy

CASES_DIR = Path(__file__).resolve().parents[2] / "policies"
CASE_FILES = sorted(CASES_DIR.glob("*.cases.yaml"))
#: The quick-start template is covered by the README's own tests.
WITHOUT_CASES = {"default"}


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    return data


def _builtin_templates() -> dict[str, Path]:
    registry = plugins.get_registry().of_kind("policy_templates")
    return {
        name: Path(reg.obj)
        for name, reg in registry.items()
        if reg.plugin == "aegis.builtins.templates"
    }


def _cases() -> list[Any]:
    out = []
    for path in CASE_FILES:
        data = _load(path)
        for number, case in enumerate(data["cases"], start=1):
            label = f"{data['template']}-{number}-{case['action'].split(':')[0]}"
            out.append(pytest.param(data["template"], case, id=label))
    return out


def test_every_builtin_template_has_cases_and_every_cases_file_a_template() -> None:
    templates = set(_builtin_templates())
    with_cases = {_load(path)["template"] for path in CASE_FILES}
    assert {"crm", "coding-agent", "finance"} <= templates
    assert with_cases == templates - WITHOUT_CASES
    for path in CASE_FILES:
        assert path.name == f"{_load(path)['template']}.cases.yaml"


@pytest.mark.parametrize("name", sorted({"crm", "coding-agent", "finance"}))
def test_template_is_valid_and_written_by_init(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "policy.yaml"
    assert main(["init", "--template", name, str(target)]) == 0
    assert target.read_text() == _builtin_templates()[name].read_text()
    assert main(["validate", str(target)]) == 0
    policy = Policy.from_yaml(target)
    assert policy.defaults.approval.value != "auto"  # nothing unforeseen runs unattended


@pytest.mark.parametrize(("template", "case"), _cases())
def test_case(
    template: str, case: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(_builtin_templates()[template].read_text())
    argv = ["simulate", str(policy_file), case["action"], "-f", "json"]
    for key, value in (case.get("params") or {}).items():
        argv += ["--param", f"{key}={json.dumps(value)}"]
    if case.get("agent"):
        argv += ["--agent", case["agent"]]
    if case.get("at"):
        argv += ["--at", case["at"]]
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    [decision] = json.loads(out)
    expect = case["expect"]
    assert decision["params"] == (case.get("params") or {})
    assert (decision["approval"], decision["matched_rule"]) == (expect["approval"], expect["rule"])
    if "risk" in expect:
        assert decision["risk_level"] == expect["risk"]
