"""Which actions change decision between two policies (the logic behind ``aegis diff``, the
server's version diff and anything else that compares policies).

Actions come from ``samples``: for every rule of either policy, names its globs fit (the
literal, a prefix with a suffix added, wildcards filled in), crossed with params on both sides
of each condition's threshold and with the param missing, so a changed threshold or a removed
rule shows up as a changed decision. ``compare`` decides each with both policies; ``to_json``
and ``to_text`` report counts by ``old -> new`` approval with a few examples each.
``text_diff`` is the plain unified diff of two YAML texts, for people reading a change.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs

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


@attrs.frozen
class DiffResult:
    total: int
    skipped: int
    changes: tuple[Change, ...]


def compare(
    before: Policy, after: Policy, actions: Iterable[tuple[Action | None, dt.datetime]]
) -> DiffResult:
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
    return DiffResult(total, skipped, tuple(changes))


def _said(decision: Any) -> str:
    rule = f"rule {decision.matched_rule!r}" if decision.matched_rule else "defaults"
    return f"{decision.approval.value} ({rule}, {decision.risk_level.name})"


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


def to_text(label: str, result: DiffResult, examples: int) -> str:
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


def to_json(result: DiffResult, examples: int) -> dict[str, Any]:
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


def text_diff(old: str, new: str, *, old_name: str = "old", new_name: str = "new") -> str:
    """The unified diff of two policy texts (empty when they are the same)."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=old_name,
            tofile=new_name,
        )
    )


def sampled_diff(before: Policy, after: Policy, *, now: dt.datetime | None = None) -> DiffResult:
    """``compare`` on the actions ``samples`` builds from both policies, decided at ``now``."""
    when = now or dt.datetime.now(dt.UTC)
    return compare(before, after, ((a, when) for a in samples(before, after)))


__all__ = [
    "Change",
    "DiffResult",
    "compare",
    "sampled_diff",
    "samples",
    "text_diff",
    "to_json",
    "to_text",
]
