"""``aegis test [PATH]``: run a policy's test cases, like ``opa test``, for review and CI.

Each failing case prints its file and line, the action, and one ``expected … got …`` line per
field that differs; a summary line ends the run. Exit 0 when every case passes, 1 when any case
fails or a cases file (or the policy it names) is broken, 2 when there is nothing to run.
The format of the cases files is documented in ``aegis.cli.policy_cases``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from cyclopts import Parameter

from aegis.cli.errors import CliError, ExitCode

if TYPE_CHECKING:
    from aegis.cli.policy_cases import Case, Past
    from aegis.core.action import Action
    from aegis.core.decision import PolicyDecision
    from aegis.core.policy import Policy


def run_tests(
    path: Path = Path("."),
    /,
    *,
    verbose: Annotated[bool, Parameter(alias="-v", negative="")] = False,
) -> int:
    """Run policy test cases (*.cases.yaml); print a diff for each failure and a summary.

    Parameters
    ----------
    path
        A cases file, a policy file with NAME.cases.yaml next to it, or a directory searched
        for *.cases.yaml (default: the current directory).
    verbose
        Also list the cases that pass.
    """
    from aegis.cli.policy_cases import find_case_files

    files = find_case_files(path)
    if not files:
        raise CliError(f"{path}: no *.cases.yaml files found")
    passed = failed = broken = 0
    for file in files:
        try:
            results = _run_file(file)
        except CliError as exc:
            sys.stdout.write(f"ERROR {exc.message}\n")
            broken += 1
            continue
        for case, problems in results:
            if problems:
                failed += 1
                sys.stdout.write(_failure(case, problems))
            else:
                passed += 1
                if verbose:
                    sys.stdout.write(f"PASS {case.where} {case.name}\n")
    total = passed + failed
    summary = f"{passed} of {total} cases passed in {len(files)} file{'s' * (len(files) != 1)}"
    if failed:
        summary += f", {failed} failed"
    if broken:
        summary += f", {broken} file{'s' * (broken != 1)} could not be run"
    sys.stdout.write(("FAIL: " if failed or broken else "PASS: ") + summary + "\n")
    return ExitCode.CHECK_FAILED if failed or broken else ExitCode.OK


def _run_file(file: Path) -> list[tuple[Case, list[str]]]:
    from aegis.cli.policy_cases import load_case_file
    from aegis.core.policy import Policy
    from aegis.errors import PolicyError

    cases = load_case_file(file)
    try:
        policy = Policy.from_yaml_string(cases.policy_text, source=cases.policy_source)
    except PolicyError as exc:
        first = str(exc.issues[0]) if exc.issues else str(exc)
        more = f" (+{len(exc.issues) - 1} more; run aegis validate)" if len(exc.issues) > 1 else ""
        raise CliError(f"{file}: policy is invalid: {first}{more}") from None
    return [(case, check(policy, case)) for case in cases.cases]


def decide(policy: Policy, case: Case) -> PolicyDecision:
    """What ``policy`` decides for the case's action at the case's frozen time."""
    from zoneinfo import ZoneInfo

    from aegis.cli.policy_cases import frozen_time

    now = frozen_time(case, ZoneInfo(policy.timezone))
    if not policy.stateful:
        return policy.evaluate(_action(case, case), now=now)
    import datetime as dt

    from aegis.core.stateful import MemoryLimitState

    state = MemoryLimitState()
    when = now or dt.datetime.now(ZoneInfo(policy.timezone))
    for past in case.history:
        ran = _action(case, past)
        for _ in range(past.times):
            policy.evaluate(ran, now=when - dt.timedelta(seconds=past.ago), state=state)
            state.commit()  # it ran: it counts, whatever this policy says of it
    return policy.evaluate(_action(case, case), now=when, state=state)


def _action(case: Case, what: Case | Past) -> Action:
    from aegis.core.action import Action

    try:
        return Action(
            what.action_type,
            what.target,
            params=what.params,
            agent_id=what.agent,
            session_id=what.session,
        )
    except (TypeError, ValueError) as exc:
        raise CliError(f"{case.where}: case {case.number}: {exc}") from None


def check(policy: Policy, case: Case) -> list[str]:
    """One line per expected field the decision does not have (empty: the case passes)."""
    decision = decide(policy, case)
    got: dict[str, Any] = {
        "approval": decision.approval.value,
        "rule": decision.matched_rule,
        "risk": decision.risk_level.name,
        "unknown": sorted(decision.unknown_conditions),
    }
    labels = {"approval": "approval", "rule": "matched_rule", "risk": "risk_level"}
    problems = [
        f"{labels.get(key, key)}: expected {_show(want)}, got {_show(got[key])}"
        for key, want in case.expect.items()
        if got[key] != want
    ]
    if problems:
        problems.append(f"reason: {decision.reason}")
    return problems


def _show(value: Any) -> str:
    if value is None:
        return "null (the defaults)"
    return value if isinstance(value, str) else json.dumps(value)


def _failure(case: Case, problems: list[str]) -> str:
    extras = [
        f"params {json.dumps(case.params, default=str)}" if case.params else "",
        f"agent {case.agent}" if case.agent else "",
        f"session {case.session}" if case.session else "",
        f"at {case.at}" if case.at else "",
        f"after {sum(p.times for p in case.history)} actions of history" if case.history else "",
    ]
    context = ", ".join(e for e in extras if e)
    head = f"FAIL {case.where} case {case.number}: {case.action_type}:{case.target}"
    if case.name != f"{case.action_type}:{case.target}":
        head += f" ({case.name})"
    lines = [head + (f" [{context}]" if context else "")]
    lines += [f"    {p}" for p in problems]
    return "\n".join(lines) + "\n"
