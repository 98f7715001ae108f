"""Rendering ``aegis simulate --explain``: one block per action, one line per rule.

Each rule line says what the engine did with it (decided, held for the fall-through, skipped,
no match, not reached) and why: which glob fit which value (or that none did), and each
condition with its argument, the values it read and whether it was true, false or unknown.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aegis.core.policy_explain import Explanation, FieldTrace, LeafTrace, RuleTrace

_EFFECT = {
    "decided": "DECIDES",
    "held": "held (approve, unknown)",
    "skipped": "skipped (auto, unknown)",
    "no match": "no match",
    "not reached": "not reached",
}


def render_text(explanation: Explanation) -> str:
    d = explanation.decision
    rule = repr(d.matched_rule) if d.matched_rule else "none (the defaults)"
    lines = [
        f"{d.action.type}:{d.action.target} -> {d.approval.value} ({d.risk_level.name}), "
        f"rule {rule}",
        f"  reason: {d.reason}",
    ]
    width = max((len(t.name) for t in explanation.rules), default=0)
    for trace in explanation.rules:
        lines.append(
            f"  {trace.index + 1:>3}. {trace.name:<{width}}  {trace.approval.value:<7} "
            f"{_EFFECT[trace.effect]}"
        )
        if trace.effect == "not reached":
            continue
        lines.extend(f"         {part}" for part in _why(trace))
    if not explanation.rules:
        lines.append("  (the policy has no rules)")
    return "\n".join(lines) + "\n"


def _why(trace: RuleTrace) -> list[str]:
    parts = [_field_text(f) for f in trace.fields] or ["match: any action (no globs)"]
    if trace.globs_match is False:
        return [p for p, f in zip(parts, trace.fields, strict=False) if f.matched is None][:1]
    parts += [_leaf_text(leaf) for leaf in trace.conditions]
    if trace.note:
        parts.append(
            f"unknown counts as {'no match' if trace.effect == 'skipped' else 'a match'}"
            f": {trace.note}"
        )
    return parts


def _field_text(field: FieldTrace) -> str:
    globs = ", ".join(field.patterns)
    if field.unknown:
        return f"{field.field}: the action has no {field.field} id; rule wants {globs} (unknown)"
    if field.matched is None:
        return f"{field.field} {field.value!r} fits none of {globs}"
    return f"{field.field} {field.value!r} fits {field.matched!r}"


def _leaf_text(leaf: LeafTrace) -> str:
    outcome = {True: "true", False: "false", None: "UNKNOWN"}[leaf.outcome]
    argument = "" if leaf.argument is None else f" {_json(leaf.argument)}"
    values = ", ".join(f"{k}={_json(v)}" for k, v in leaf.values.items())
    seen = f" with {values}" if values else ""
    return f"{leaf.path}{argument}{seen}: {outcome}"


def _json(value: Any) -> str:
    if isinstance(value, str) and value == "(missing)":
        return value
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def to_json(explanation: Explanation) -> list[dict[str, Any]]:
    """The trace as plain data, for ``simulate --explain -f json``."""
    return [
        {
            "index": t.index,
            "rule": t.name,
            "approval": t.approval.value,
            "effect": t.effect,
            "outcome": t.outcome,
            "globs_match": t.globs_match,
            "fields": [
                {
                    "field": f.field,
                    "value": f.value,
                    "patterns": list(f.patterns),
                    "matched": f.matched,
                    "unknown": f.unknown,
                }
                for f in t.fields
            ],
            "conditions": [
                {
                    "path": c.path,
                    "condition": c.name,
                    "argument": c.argument,
                    "values": dict(c.values),
                    "outcome": c.outcome,
                }
                for c in t.conditions
            ],
            "note": t.note,
        }
        for t in explanation.rules
    ]
