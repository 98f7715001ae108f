"""``aegis simulate --explain``: every rule, and why it matched or not."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import RunCli

from aegis.builtins.templates import TEMPLATE_DIR

FINANCE = str(TEMPLATE_DIR / "finance.yaml")


def test_explain_text_lists_every_rule_with_globs_conditions_and_values(run_cli: RunCli) -> None:
    result = run_cli(
        "simulate", FINANCE, "transfer:acct-1", "-p", "amount=500",
        "--at", "2026-03-18T10:00+00:00", "--explain",
    )  # fmt: skip
    assert result.code == 0, result.err
    out = result.out
    assert "transfer:acct-1 -> auto (MEDIUM), rule 'small_payments_run'" in out
    assert "type 'transfer' fits none of add_payee, update_payee" in out
    assert 'param_gt {"amount": 10000} with amount=500: false' in out
    assert "4. daily_budget" in out and "5. small_payments_run" in out
    assert "DECIDES" in out
    assert "payments_need_approval              approve not reached" in out


def test_explain_shows_unknown_and_json_carries_the_trace(run_cli: RunCli) -> None:
    result = run_cli(
        "simulate", FINANCE, "transfer:acct-1", "--at", "2026-03-18T10:00+00:00",
        "--explain", "-f", "json",
    )  # fmt: skip
    assert result.code == 0, result.err
    [entry] = json.loads(result.out)
    assert (entry["approval"], entry["matched_rule"]) == ("block", "no_large_transfers")
    by_rule = {t["rule"]: t for t in entry["explain"]}
    large = by_rule["no_large_transfers"]
    assert large["effect"] == "decided"
    assert large["conditions"][0]["values"] == {"amount": "(missing)"}
    assert large["conditions"][0]["outcome"] is None
    assert by_rule["reads_run"]["effect"] == "not reached"


def test_explain_of_an_invalid_action_is_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("simulate", FINANCE, "read", "--explain")
    assert result.code == 2
    assert result.err.count("\n") == 1


def test_validate_strict_flags_a_shadowed_rule_and_exits_1(run_cli: RunCli, tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        'version: "1"\ndefaults: { approval: block }\nrules:\n'
        "  - { name: deletes, match: { type: 'delete*' }, approval: block }\n"
        "  - { name: delete_user, match: { type: delete_user }, approval: auto }\n"
    )
    lax = run_cli("validate", str(policy))
    assert lax.code == 0
    strict = run_cli("validate", "--strict", str(policy))
    assert strict.code == 1
    assert (
        f"{policy}: strict: rule 'delete_user' can never match: the earlier rule 'deletes' "
        "(type delete*, no conditions) takes every action it fits"
    ) in strict.out.splitlines()
