"""An installed third-party plugin reaches the CLI and the Runtime with no change to the core.

The plugin (tests/plugins/aegis-example-plugin) is installed by ``nox -s plugin_wheel`` from a
wheel, or editable; the CLI is driven as a user would, through the installed ``aegis`` script.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aegis import Action, AuditStore, Policy, Runtime
from aegis.core.result import ResultStatus
from aegis.errors import PolicyError
from aegis.plugins import get_registry
from aegis.runtime.audit.ship import build_sink

POLICY = """\
version: "1"
defaults:
  risk_level: medium
  approval: block
rules:
  - name: round_batches
    match: { type: "export*" }
    conditions:
      param_multiple_of: { count: 10 }
    risk_level: low
    approval: auto
  - name: odd_deletes_blocked
    match: { type: "delete*" }
    conditions:
      param_multiple_of: { count: 2 }
    risk_level: critical
    approval: block
  - name: other_deletes
    match: { type: "delete*" }
    risk_level: low
    approval: auto
"""


def _aegis() -> str:
    """The ``aegis`` script installed next to this interpreter (the one a user would run)."""
    script = Path(sys.executable).parent / "aegis"
    found = str(script) if script.exists() else shutil.which("aegis")
    assert found, "the aegis console script is not installed"
    return found


def aegis_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_PLUGINS")}
    return subprocess.run(
        [_aegis(), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


def test_registry_holds_the_plugins_condition_and_executor() -> None:
    registry = get_registry()
    condition = registry.of_kind("conditions")["param_multiple_of"]
    executor = registry.of_kind("executors")["example_echo"]
    sink = registry.of_kind("audit_sinks")["example_memory"]
    assert condition.plugin == executor.plugin == sink.plugin == "example"
    assert "schema" in condition.options


def test_cli_plugins_lists_distribution_and_version(tmp_path: Path) -> None:
    done = aegis_cli("plugins", "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    (example,) = [p for p in payload["plugins"] if p["name"] == "example"]
    assert example["distribution"] == "aegis-example-plugin"
    assert example["version"] == "0.3.1"
    assert example["builtin"] is False
    assert example["registers"]["conditions"] == ["param_multiple_of"]
    assert example["registers"]["executors"] == ["example_echo"]
    assert example["registers"]["audit_sinks"] == ["example_memory"]
    assert payload["failures"] == []

    table = aegis_cli("plugins", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "aegis-example-plugin" in table.stdout
    assert "0.3.1" in table.stdout


def test_cli_schema_shows_the_plugin_condition(tmp_path: Path) -> None:
    done = aegis_cli("schema", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert '"param_multiple_of"' in done.stdout
    json.loads(done.stdout)  # still one valid JSON document with the plugin fragment merged


def test_cli_validate_accepts_the_condition_and_checks_its_argument(
    policy_file: Path, tmp_path: Path
) -> None:
    ok = aegis_cli("validate", str(policy_file), cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK" in ok.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(POLICY.replace("{ count: 10 }", "{ count: 0 }"))
    done = aegis_cli("validate", str(bad), cwd=tmp_path)
    assert done.returncode == 1
    # one line naming file and line of the bad argument, no traceback
    assert f"{bad}:9" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def _simulate(policy_file: Path, cwd: Path, *args: str) -> list[dict[str, object]]:
    done = aegis_cli("simulate", str(policy_file), *args, "--format", "json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    decisions: list[dict[str, object]] = json.loads(done.stdout)
    return decisions


def test_cli_simulate_evaluates_the_plugin_condition(policy_file: Path, tmp_path: Path) -> None:
    (round_,) = _simulate(policy_file, tmp_path, "export:crm", "--param", "count=30")
    assert round_["matched_rule"] == "round_batches"
    assert round_["approval"] == "auto"
    (odd,) = _simulate(policy_file, tmp_path, "export:crm", "--param", "count=31")
    assert odd["matched_rule"] is None  # falls through to the defaults: block
    assert odd["approval"] == "block"


def test_unknown_plugin_condition_result_is_never_laxer(policy_file: Path, tmp_path: Path) -> None:
    # count missing: the plugin's check answers "unknown"; on a block rule that counts as a match.
    (missing,) = _simulate(policy_file, tmp_path, "delete:crm")
    assert missing["matched_rule"] == "odd_deletes_blocked"
    assert missing["approval"] == "block"
    assert "param_multiple_of" in str(missing["unknown_conditions"])
    # and on an auto rule it does not match: the defaults (block) decide.
    (not_int,) = _simulate(policy_file, tmp_path, "export:crm", "--param", 'count="ten"')
    assert not_int["approval"] == "block"


def test_policy_api_rejects_a_bad_plugin_argument_at_load() -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_yaml_string(POLICY.replace("{ count: 10 }", "{ count: -3 }"), source="p.yaml")
    assert any(issue.line == 9 for issue in info.value.issues), info.value.issues


async def test_runtime_runs_the_plugin_executor_by_registered_name(
    policy_file: Path, tmp_path: Path
) -> None:
    policy = Policy.from_yaml(policy_file)
    db = tmp_path / "audit.db"
    async with Runtime(
        executor="example_echo", policy=policy, approval_handler="auto", audit=f"sqlite:///{db}"
    ) as runtime:
        ran = await runtime.run_one(Action("export", "crm", params={"count": 40}))
    assert ran.status is ResultStatus.SUCCESS
    assert ran.data["echo"] == "echo:export:crm"
    assert ran.decision is not None and ran.decision.matched_rule == "round_batches"


async def test_runtime_gates_the_plugin_executor_with_the_plugin_condition(
    policy_file: Path, tmp_path: Path
) -> None:
    executor = get_registry().of_kind("executors")["example_echo"].obj(prefix="x")
    allowed = Action("export", "crm", params={"count": 40})
    async with Runtime(
        executor=executor,
        policy=Policy.from_yaml(policy_file),
        approval_handler="auto",
        audit=f"sqlite:///{tmp_path / 'audit.db'}",
    ) as runtime:
        ran = await runtime.run_one(allowed)
        stopped = await runtime.run_one(Action("export", "crm", params={"count": 41}))
    assert ran.status is ResultStatus.SUCCESS
    assert stopped.status is ResultStatus.BLOCKED
    assert not stopped.executed
    # only the allowed action reached the executor (the runtime stamps its session id on it)
    assert [(a.type, a.target, a.params) for a in executor.executed] == [
        (allowed.type, allowed.target, allowed.params)
    ]


async def test_plugin_sink_receives_every_committed_record(
    policy_file: Path, tmp_path: Path
) -> None:
    sink = build_sink("example_memory", name="test-sink")
    store = AuditStore(url=f"sqlite:///{tmp_path / 'audit.db'}", sinks=[sink])
    actions = [
        Action("export", "crm", params={"count": 10}),  # auto: runs
        Action("export", "crm", params={"count": 11}),  # defaults: blocked
        Action("delete", "crm"),  # unknown on a block rule: blocked
    ]
    async with (
        store,
        Runtime(
            executor="example_echo", policy=Policy.from_yaml(policy_file), audit=store
        ) as runtime,
    ):
        results = [await runtime.run_one(action) for action in actions]
    # closing the store ships what is committed; the sink saw each action exactly once
    assert [r.status for r in results] == [
        ResultStatus.SUCCESS,
        ResultStatus.BLOCKED,
        ResultStatus.BLOCKED,
    ]
    assert sorted(r.id for r in sink.records) == sorted(r.audit_id for r in results)
    assert [(r.action_type, r.result) for r in sorted(sink.records, key=lambda r: r.id)] == [
        ("export", "success"),
        ("export", "blocked"),
        ("delete", "blocked"),
    ]
    assert sink.closed
