"""``aegis simulate``: what a policy decides for actions given on the command line, run
nothing.

Apart from the other policy commands (``policy_cmds``) because it is the one that evaluates:
it builds actions, keeps the history stateful conditions read (each allowed action counts
for the next), and prints decisions as a table, JSON, or a rule-by-rule explanation.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from cyclopts import Parameter

from aegis.cli.errors import CliError, ExitCode

if TYPE_CHECKING:
    from aegis.core.decision import PolicyDecision
    from aegis.core.policy import Policy
    from aegis.core.stateful import MemoryLimitState


def simulate(
    file: Path,
    /,
    *actions: str,
    param: Annotated[list[str] | None, Parameter(alias="-p")] = None,
    agent: str | None = None,
    at: str | None = None,
    format: Annotated[Literal["table", "json"], Parameter(alias="-f")] = "table",
    explain: Annotated[bool, Parameter(negative="")] = False,
) -> int:
    """Show what the policy decides for each action, without executing anything.

    Example: aegis simulate policy.yaml read:crm bulk_update:crm delete:db --param count=150

    Parameters
    ----------
    file
        Policy YAML file.
    actions
        Actions as type:target (only the first colon splits).
    param
        key=value params for every action; values are JSON when they parse (count=150 is a
        number), dotted keys nest (amount.value=5). Repeatable.
    agent
        Agent id for the actions (rules can match on agent).
    at
        Evaluate as if at this ISO date/time (time conditions); default now.
    format
        table or json.
    explain
        For each action, every rule in order and why it matched or not (which glob, which
        condition, which value, what was unknown).
    """
    from aegis.cli.parsing import parse_action_spec, parse_datetime, parse_params

    if not actions:
        raise CliError("simulate: give at least one action as type:target, e.g. read:crm")
    specs = [parse_action_spec(a) for a in actions]
    params = parse_params(param)
    now = parse_datetime(at, option="--at") if at is not None else None
    if not file.is_file():
        raise CliError(f"{file}: {'is a directory' if file.is_dir() else 'no such file'}")
    from aegis.core.action import Action
    from aegis.core.policy import Policy

    policy = Policy.from_yaml(file)  # PolicyError → issue lines on stderr, exit 1

    from aegis.errors import ActionError

    built = []
    for t, target in specs:
        try:
            built.append(Action(t, target, params=params, agent_id=agent))
        except ActionError as exc:  # an agent could not send it either: say why, in one line
            raise CliError(f"simulate: not a valid action: {exc}") from None
    if explain:
        return _explained(policy, built, now, format)
    history = _history(policy)
    decisions = [_counted(policy.evaluate(a, now=now, state=history), history) for a in built]
    if format == "json":
        payload: list[dict[str, Any]] = [_decision_json(d) for d in decisions]
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        return ExitCode.OK

    from aegis.cli.output import print_table

    rows = [
        (
            d.action.type,
            d.action.target,
            d.risk_level.name,
            d.approval.value,
            d.matched_rule or "(defaults)",
            ", ".join(d.unknown_conditions) or "-",
            d.reason,
        )
        for d in decisions
    ]
    print_table(
        ("Action", "Target", "Risk", "Approval", "Rule", "Unknown", "Reason"),
        rows,
        title=f"Simulation: {file} (nothing executed)",
    )
    return ExitCode.OK


def _history(policy: Policy) -> MemoryLimitState | None:
    """Stateful conditions in ``simulate`` read the actions given before, starting empty."""
    from aegis.core.stateful import MemoryLimitState

    return MemoryLimitState() if policy.stateful else None


def _counted(decision: PolicyDecision, history: MemoryLimitState | None) -> PolicyDecision:
    """Count an allowed action as run (the next actions see it); a blocked one did not run."""
    if history is not None:
        if decision.is_allowed:
            history.commit()
        else:
            history.pending.clear()
    return decision


def _decision_json(d: PolicyDecision) -> dict[str, Any]:
    return {
        "action_type": d.action.type,
        "target": d.action.target,
        "params": d.action.params,
        "agent_id": d.action.agent_id,
        "risk_level": d.risk_level.name,
        "approval": d.approval.value,
        "is_allowed": d.is_allowed,
        "matched_rule": d.matched_rule,
        "unknown_conditions": list(d.unknown_conditions),
        "flags": list(d.flags),
        "reason": d.reason,
    }


def _explained(policy: Policy, actions: list[Any], now: Any, format: str) -> int:
    from aegis.cli.policy_explain import render_text, to_json
    from aegis.core.policy_explain import explain

    history = _history(policy)
    explanations = [explain(policy, action, now=now, state=history) for action in actions]
    for e in explanations:
        _counted(e.decision, history)
    if format == "json":
        payload = [{**_decision_json(e.decision), "explain": to_json(e)} for e in explanations]
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        return ExitCode.OK
    sys.stdout.write(f"Explanation: {policy.source} (nothing executed)\n")
    for e in explanations:
        sys.stdout.write("\n" + render_text(e))
    return ExitCode.OK
