"""``aegis diff OLD NEW``: which actions change decision between two policies.

Two sources of actions:

* **sampled** (always): for every rule of either policy, names its globs fit (the literal, a
  prefix with a suffix added, wildcards filled in), crossed with params on both sides of each
  condition's threshold and with the param missing, so a changed threshold or a removed rule
  shows up as a changed decision;
* **replayed** (``--replay``): the actions in an audit database since ``--since``, each decided
  by both policies at the time it was recorded ("this change would have blocked 312 of last
  week's actions, here are 5"). Params in the audit are redacted as stored; a condition on a
  redacted param sees the redaction marker.

Output: counts by ``old -> new`` approval and a few examples of each; exit 0 whatever changed
(a diff is a report, not a check).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import attrs
from cyclopts import Parameter

from aegis.cli.errors import CliError, ExitCode

if TYPE_CHECKING:
    from aegis.core.action import Action
    from aegis.core.policy import Policy

_THRESHOLDS = ("param_gt", "param_lt", "param_gte", "param_lte")
_MAX_SAMPLES = 20_000


@attrs.frozen
class Change:
    action: Action
    old: str  # "approve (rule 'x')"
    new: str
    key: tuple[str, str]  # (old approval, new approval)


def diff(
    old: Path,
    new: Path,
    /,
    *,
    replay: Annotated[bool, Parameter(negative="")] = False,
    db: Annotated[
        str | None, Parameter(help="Audit store URL or file path (with --replay).")
    ] = None,
    since: str = "7d",
    at: str | None = None,
    examples: int = 5,
    format: Annotated[Literal["table", "json"], Parameter(alias="-f")] = "table",
) -> int:
    """Show which actions change decision between two policies (nothing is executed).

    Parameters
    ----------
    old
        The policy in force.
    new
        The candidate policy.
    replay
        Also replay the actions recorded in the audit database (see --db, --since).
    db
        Audit store URL or file path (default: $AEGIS_AUDIT_URL or ./aegis_audit.db).
    since
        With --replay: records since this ISO time or span back from now (30m, 1h, 7d).
    at
        Decide the sampled actions as if at this ISO date/time (default now).
    examples
        How many example actions to show per kind of change.
    format
        table or json.
    """
    from aegis.cli.parsing import parse_datetime, parse_since
    from aegis.core.policy import Policy

    if examples < 0:
        raise CliError("--examples: must be 0 or more")
    for path in (old, new):
        if not path.is_file():
            raise CliError(f"{path}: {'is a directory' if path.is_dir() else 'no such file'}")
    now = parse_datetime(at, option="--at") if at is not None else dt.datetime.now(dt.UTC)
    start = parse_since(since) if replay else None
    before, after = Policy.from_yaml(old), Policy.from_yaml(new)
    sampled = _compare(before, after, ((a, now) for a in samples(before, after)))
    report: dict[str, Any] = {"sampled": sampled}
    if replay:
        from aegis.cli.audit_cmds import open_store

        store = open_store(db)
        try:
            report["replayed"] = _compare(before, after, _recorded(store, start))
        finally:
            store.close_sync()
    if format == "json":
        payload = {name: _json(part, examples) for name, part in report.items()}
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        return ExitCode.OK
    sys.stdout.write(f"Diff: {old} -> {new} (nothing executed)\n")
    for name, part in report.items():
        label = (
            "sampled from both policies' rules"
            if name == "sampled"
            else (f"replayed from the audit log since {start.isoformat() if start else since}")
        )
        sys.stdout.write("\n" + _text(label, part, examples))
    return ExitCode.OK


# --- comparing ------------------------------------------------------------------------------


@attrs.frozen
class _Result:
    total: int
    skipped: int
    changes: tuple[Change, ...]


def _compare(
    before: Policy, after: Policy, actions: Iterable[tuple[Action | None, dt.datetime]]
) -> _Result:
    total = skipped = 0
    changes: list[Change] = []
    for action, when in actions:
        total += 1
        if action is None:
            skipped += 1
            continue
        a, b = before.evaluate(action, now=when), after.evaluate(action, now=when)
        if (a.approval, a.matched_rule, a.risk_level) != (b.approval, b.matched_rule, b.risk_level):
            changes.append(Change(action, _said(a), _said(b), (a.approval.value, b.approval.value)))
    return _Result(total, skipped, tuple(changes))


def _said(decision: Any) -> str:
    rule = f"rule {decision.matched_rule!r}" if decision.matched_rule else "defaults"
    return f"{decision.approval.value} ({rule}, {decision.risk_level.name})"


def _recorded(store: Any, since: dt.datetime | None) -> Iterator[tuple[Action | None, dt.datetime]]:
    from aegis.core.action import Action

    after_id = None
    while True:
        batch = store.query(since=since, after_id=after_id, limit=2000, order="asc")
        if not batch:
            return
        for record in batch:
            after_id = record.id
            if record.parent_id is not None:  # a follow-up row of an action already counted
                continue
            try:
                action: Action | None = Action(
                    record.action_type,
                    record.target,
                    params=record.params,
                    agent_id=record.agent_id,
                    session_id=record.session_id,
                )
            except (TypeError, ValueError):
                action = None
            yield action, record.created_at


# --- sampling -------------------------------------------------------------------------------


def samples(*policies: Policy) -> list[Action]:
    """Actions built from every rule's globs and conditions, in both policies (deduplicated)."""
    from aegis.core.action import Action

    seen: set[str] = set()
    out: list[Action] = []
    for policy in policies:
        for rule in policy.rules:
            types = _names(rule.match.type) or ["any_action"]
            targets = _names(rule.match.target) or ["any_target"]
            agents: list[str | None] = [None, *(_names(rule.match.agent) or [])]
            for params in _param_variants(rule.conditions or {}):
                for t in types:
                    for target in targets:
                        for agent in agents:
                            try:
                                action = Action(t, target, params=params, agent_id=agent)
                            except (TypeError, ValueError):
                                continue
                            if action.digest not in seen and len(out) < _MAX_SAMPLES:
                                seen.add(action.digest)
                                out.append(action)
    return out


def _names(globs: tuple[str, ...] | None) -> list[str]:
    """Names a glob fits: the literal, or its wildcards filled in (``*`` also by a suffix)."""
    names: list[str] = []
    for pattern in globs or ():
        filled = re.sub(r"\[!?([^\]])[^\]]*\]", r"\1", pattern).replace("?", "x")
        names.append(filled.replace("*", ""))
        if "*" in pattern:
            names.append(filled.replace("*", "_sample"))
    return [n for n in dict.fromkeys(names) if n]


def _param_variants(conditions: Mapping[str, Any]) -> list[dict[str, Any]]:
    """No params, then each condition's params just inside and just outside its threshold."""
    variants: list[dict[str, Any]] = [{}]
    for name, argument in _leaves(conditions):
        if not isinstance(argument, Mapping):
            continue
        if name in _THRESHOLDS:
            for delta in (-1, 0, 1):
                variants.append(_nested({p: _shift(v, delta) for p, v in argument.items()}))
        elif name in ("param_eq", "param_contains"):
            variants.append(_nested(dict(argument)))
    unique: dict[str, dict[str, Any]] = {}
    for v in variants:
        unique.setdefault(json.dumps(v, sort_keys=True, default=str), v)
    return list(unique.values())


def _leaves(conditions: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    for key, value in conditions.items():
        if key in ("all", "any") and isinstance(value, list):
            for item in value:
                if isinstance(item, Mapping):
                    yield from _leaves(item)
        elif key == "not" and isinstance(value, Mapping):
            yield from _leaves(value)
        else:
            yield key, value


def _shift(value: Any, delta: int) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return value + delta


def _nested(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in flat.items():
        node = out
        parts = str(path).split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[parts[-1]] = value
    return out


# --- output ---------------------------------------------------------------------------------


def _text(label: str, result: _Result, examples: int) -> str:
    changed = len(result.changes)
    lines = [
        f"{label}: {changed} of {result.total} actions change decision"
        + (f" ({result.skipped} could not be rebuilt)" if result.skipped else "")
    ]
    by_key = Counter(c.key for c in result.changes)
    for (old, new), count in sorted(by_key.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {old} -> {new}: {count}")
        shown = [c for c in result.changes if c.key == (old, new)][:examples]
        for c in shown:
            params = f" {json.dumps(dict(c.action.params), default=str)}" if c.action.params else ""
            agent = f" agent={c.action.agent_id}" if c.action.agent_id else ""
            lines.append(
                f"      {c.action.type}:{c.action.target}{params}{agent}: {c.old} -> {c.new}"
            )
    return "\n".join(lines) + "\n"


def _json(result: _Result, examples: int) -> dict[str, Any]:
    by_key = Counter(c.key for c in result.changes)
    return {
        "total": result.total,
        "skipped": result.skipped,
        "changed": len(result.changes),
        "changes": [
            {
                "old": old,
                "new": new,
                "count": count,
                "examples": [
                    {
                        "action_type": c.action.type,
                        "target": c.action.target,
                        "params": dict(c.action.params),
                        "agent_id": c.action.agent_id,
                        "old": c.old,
                        "new": c.new,
                    }
                    for c in result.changes
                    if c.key == (old, new)
                ][:examples],
            }
            for (old, new), count in sorted(by_key.items())
        ],
    }
