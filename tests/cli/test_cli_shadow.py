"""``aegis shadow report`` on a real audit database written by a runtime with a shadow policy."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import RunCli

from aegis import Action, Policy, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.core.result import Result, ResultStatus
from aegis.runtime.approval.handlers import AutoApprovalHandler
from aegis.runtime.audit import AuditStore

LIVE = """
version: "1"
defaults: {risk_level: medium, approval: block}
rules:
  - {name: reads, match: {type: "read*"}, risk_level: low, approval: auto}
  - {name: exports, match: {type: "export*"}, risk_level: medium, approval: auto}
  - {name: deletes, match: {type: "delete*"}, risk_level: critical, approval: block}
"""

# The candidate: exports now need a human, deletes of test data are allowed, reads are
# unchanged but one is re-rated.
CANDIDATE = """
version: "1"
defaults: {risk_level: medium, approval: block}
rules:
  - {name: reads_big, match: {type: "read*"}, conditions: {param_gt: {count: 1000}},
     risk_level: high, approval: auto}
  - {name: reads, match: {type: "read*"}, risk_level: low, approval: auto}
  - {name: exports_reviewed, match: {type: "export*"}, risk_level: high, approval: approve}
  - {name: test_deletes, match: {type: "delete*", target: "test_*"}, risk_level: low,
     approval: auto}
  - {name: deletes, match: {type: "delete*"}, risk_level: critical, approval: block}
"""


class Ok(BaseExecutor):
    def __init__(self) -> None:
        self.ran = 0

    async def execute(self, action: Action) -> Result:
        self.ran += 1
        return Result(action, ResultStatus.SUCCESS)


async def _write(url: str, tmp_path: Path) -> Ok:
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(CANDIDATE)
    executor = Ok()
    async with Runtime(
        executor=executor,
        policy=Policy.from_yaml_string(LIVE),
        approval_handler=AutoApprovalHandler(),
        audit=AuditStore(url),
        shadow=str(candidate),
    ) as rt:
        for _ in range(7):
            await rt.run_one(Action("read_contact", "crm", {"count": 5}))
        await rt.run_one(Action("read_contact", "crm", {"count": 5000}))
        for i in range(3):
            await rt.run_one(Action("export_contacts", "crm", {"n": i}, agent_id="bot"))
        for _ in range(2):
            await rt.run_one(Action("delete_rows", "test_db"))
        await rt.run_one(Action("delete_rows", "prod_db"))
    return executor


@pytest.fixture
def shadowed_db(tmp_path: Path) -> tuple[str, Ok]:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    executor = asyncio.run(_write(url, tmp_path))
    return url, executor


def test_report_counts_changes_by_rule_with_examples(
    run_cli: RunCli, shadowed_db: tuple[str, Ok]
) -> None:
    url, executor = shadowed_db
    assert executor.ran == 11  # the live policy decided: 8 reads and 3 exports ran
    out = run_cli("shadow", "report", "--db", url, "--format", "json")
    assert out.code == 0, out.err
    data = json.loads(out.out)
    assert data["records"] == 14
    assert data["changed"] == 5
    assert data["risk_only"] == 1  # the big read: auto either way, high instead of low
    assert data["unchanged"] == 8
    assert data["errors"] == 0
    changes = {
        (c["live"], c["shadow"], c["live_rule"], c["shadow_rule"]): c for c in data["changes"]
    }
    assert set(changes) == {
        ("auto", "approve", "exports", "exports_reviewed"),
        ("block", "auto", "deletes", "test_deletes"),
    }
    exports = changes[("auto", "approve", "exports", "exports_reviewed")]
    assert exports["count"] == 3 and len(exports["examples"]) == 3
    example = exports["examples"][0]
    assert example["action_type"] == "export_contacts" and example["agent_id"] == "bot"
    assert example["live"]["approval"] == "auto" and example["live"]["decision"] == "auto"
    assert example["shadow"]["approval"] == "approve"
    assert example["shadow"]["risk_level"] == "HIGH"
    assert data["changes"][0]["count"] >= data["changes"][1]["count"]  # busiest first
    assert list(data["policies"].values()) == [14]


def test_report_table_and_limits(run_cli: RunCli, shadowed_db: tuple[str, Ok]) -> None:
    url, _ = shadowed_db
    out = run_cli("shadow", "report", "--db", url, "--examples", "1")
    assert out.code == 0, out.err
    assert "14 records carry a shadow decision" in out.out
    assert "would change: 5" in out.out
    assert "auto -> approve   rule exports -> exports_reviewed" in out.out
    assert "block -> auto   rule deletes -> test_deletes" in out.out
    shown = [line for line in out.out.splitlines() if line.strip().startswith("#")]
    assert len(shown) == 2  # one example per change
    assert "delete_rows on test_db: live block (deletes, CRITICAL) -> shadow auto" in out.out


def test_fail_on_change_is_a_rollout_gate(run_cli: RunCli, shadowed_db: tuple[str, Ok]) -> None:
    url, _ = shadowed_db
    assert run_cli("shadow", "report", "--db", url, "--fail-on-change").code == 1
    future = run_cli("shadow", "report", "--db", url, "--since", "2999-01-01", "--fail-on-change")
    assert future.code == 0 and "No records since" in future.out


def test_since_filters(run_cli: RunCli, shadowed_db: tuple[str, Ok]) -> None:
    url, _ = shadowed_db
    recent = json.loads(run_cli("shadow", "report", "--db", url, "--since", "1h", "-f", "json").out)
    assert recent["records"] == 14 and recent["since"] is not None


def test_errors_are_counted_apart(run_cli: RunCli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"

    async def write() -> None:
        async with Runtime(
            executor=Ok(), policy=Policy.from_yaml_string(LIVE), audit=url, shadow=42
        ) as rt:
            await rt.run_one(Action("read_contact", "crm"))
            await rt.run_one(Action("read_contact", "crm"))

    asyncio.run(write())
    data = json.loads(run_cli("shadow", "report", "--db", url, "-f", "json").out)
    assert data["errors"] == 2 and data["changed"] == 0
    (kind,) = data["error_kinds"]
    assert kind["message"].startswith("shadow error: the shadow policy is a int")
    assert kind["example_ids"] == [2, 1]
    text = run_cli("shadow", "report", "--db", url).out
    assert "shadow errors: 2" in text and "e.g. #2, #1" in text


def test_a_store_without_shadows_or_from_before_them(run_cli: RunCli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"

    async def write() -> None:
        async with Runtime(executor=Ok(), policy=Policy.from_yaml_string(LIVE), audit=url) as rt:
            await rt.run_one(Action("read_contact", "crm"))

    asyncio.run(write())
    out = run_cli("shadow", "report", "--db", url)
    assert out.code == 0 and "No records carry a shadow decision" in out.out
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE aegis_audit DROP COLUMN shadow"))
    engine.dispose()
    out = run_cli("shadow", "report", "--db", url)
    assert out.code == 0 and "written before shadow mode" in out.out
    assert run_cli("audit", "verify", "--db", url).code == 0


@pytest.mark.parametrize(
    ("argv", "code", "said"),
    [
        (["--since", "yesterday-ish"], 2, "--since"),
        (["--examples", "-1"], 2, "--examples"),
        (["--format", "xml"], 2, "format"),
    ],
)
def test_usage_errors(
    run_cli: RunCli, shadowed_db: tuple[str, Ok], argv: list[str], code: int, said: str
) -> None:
    url, _ = shadowed_db
    out = run_cli("shadow", "report", "--db", url, *argv)
    assert out.code == code and said in out.err


def test_a_missing_store_is_exit_3(run_cli: RunCli, tmp_path: Path, monkeypatch: Any) -> None:
    out = run_cli("shadow", "report", "--db", str(tmp_path / "nope.db"))
    assert out.code == 3 and "no audit database" in out.err


def test_changes_resting_on_unknown_conditions_say_so(run_cli: RunCli, tmp_path: Path) -> None:
    """A shadow block rule whose condition cannot be evaluated applies (unknown counts as a
    match on a block rule); the report names the condition so nobody mistakes it for a hit."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    candidate = Policy.from_yaml_string(
        'version: "1"\ndefaults: {approval: block}\nrules:\n'
        '  - {name: big_reads, match: {type: "read*"}, conditions: {param_gt: {count: 10}},\n'
        "     risk_level: high, approval: block}\n"
        '  - {name: reads, match: {type: "read*"}, risk_level: low, approval: auto}\n'
    )

    async def write() -> None:
        async with Runtime(
            executor=Ok(), policy=Policy.from_yaml_string(LIVE), audit=url, shadow=candidate
        ) as rt:
            await rt.run_one(Action("read_contact", "crm"))  # no count: unknown
            await rt.run_one(Action("read_contact", "crm", {"count": 1}))  # known, false

    asyncio.run(write())
    data = json.loads(run_cli("shadow", "report", "--db", url, "-f", "json").out)
    assert data["changed"] == 1 and data["unchanged"] == 1
    (change,) = data["changes"]
    assert change["unknown"] == ["param_gt"] and change["shadow_rule"] == "big_reads"
    assert "(shadow: param_gt unknown)" in run_cli("shadow", "report", "--db", url).out
