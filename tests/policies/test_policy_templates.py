"""Every built-in policy template, run against its test cases in ``policies/<name>.cases.yaml``.

Each cases file goes through ``aegis test`` (in-process), the command users run on their own
policies; ``aegis init --template`` must write each template byte for byte, and it must validate.
"""

from __future__ import annotations

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
#: The templates issue 9 lists (its names, with the file names `aegis init --template` takes).
ISSUE_TEMPLATES = (
    "crm",
    "coding-agent",
    "finance",
    "browser",
    "data-pipeline",
    "devops",
    "healthcare",
    "ecommerce",
    "support",
)


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


def test_every_builtin_template_has_cases_and_every_cases_file_a_template() -> None:
    templates = set(_builtin_templates())
    with_cases = {_load(path)["template"] for path in CASE_FILES}
    assert set(ISSUE_TEMPLATES) <= templates
    assert with_cases == templates - WITHOUT_CASES
    for path in CASE_FILES:
        assert path.name == f"{_load(path)['template']}.cases.yaml"


@pytest.mark.parametrize("name", sorted(_builtin_templates()))
def test_template_is_valid_and_written_by_init(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "policy.yaml"
    assert main(["init", "--template", name, str(target)]) == 0
    assert target.read_text() == _builtin_templates()[name].read_text()
    assert main(["validate", str(target)]) == 0
    policy = Policy.from_yaml(target)
    assert policy.defaults.approval.value != "auto"  # nothing unforeseen runs unattended


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: p.name)
def test_cases_pass_under_aegis_test(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = main(["test", str(path)])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    count = len(_load(path)["cases"])
    assert out.splitlines()[-1] == f"PASS: {count} of {count} cases passed in 1 file"
