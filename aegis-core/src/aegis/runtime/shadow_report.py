"""What a shadow policy would have changed, read back from the audit trail.

Every record a runtime with a shadow policy wrote holds the live decision (``approval``,
``risk_level``, ``matched_rule``) and the shadow's (the ``shadow`` column). The report counts
them in the database (one ``GROUP BY``, so a week of records costs one scan, not a Python loop
over rows), then classifies each group in Python:

* **changed** — the approval differs (``auto -> block``: the candidate would have stopped it;
  ``block -> auto``: it would have let through what the live policy stopped);
* **risk only** — same approval, another risk level;
* **unchanged** — same approval and risk (the rule that decided may differ);
* **errors** — the shadow could not decide (``shadow error: ...``).

Changes are grouped by (live approval, shadow approval, live rule, shadow rule), busiest first,
each with the newest few records as examples.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import attrs
from sqlalchemy import Engine, and_, func, select
from sqlalchemy.sql.elements import ColumnElement

from aegis.runtime.audit.migrate import readable
from aegis.runtime.audit.query import AuditFilter, Since
from aegis.runtime.audit.schema import audit_log


@attrs.frozen
class ShadowExample:
    """One record of a change: what it was, what the live policy and the shadow said."""

    id: int
    created_at: str
    action_type: str
    target: str
    agent_id: str | None
    live: dict[str, Any]
    shadow: dict[str, Any]


@attrs.frozen
class ShadowChange:
    """All records whose decision would change the same way, under the same pair of rules."""

    live: str
    shadow: str
    live_rule: str | None
    shadow_rule: str | None
    count: int
    examples: tuple[ShadowExample, ...] = ()
    #: Conditions the shadow could not evaluate in these records (stateful ones always: the
    #: shadow gets no state), so its decision rests on the unknown-counts-as-a-match rule.
    unknown: tuple[str, ...] = ()


@attrs.frozen
class ShadowErrors:
    """Records where the shadow could not decide, by message."""

    message: str
    count: int
    example_ids: tuple[int, ...]


@attrs.frozen
class ShadowReport:
    records: int
    unchanged: int
    risk_only: int
    changed: int
    errors: int
    changes: tuple[ShadowChange, ...]
    error_kinds: tuple[ShadowErrors, ...]
    #: Shadow policy fingerprint -> how many records it decided.
    policies: dict[str, int]
    #: False when the store predates shadow mode (no ``shadow`` column at all).
    has_column: bool = True

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


_Group = tuple[str | None, str | None, str | None, str]  # live approval, risk, rule, shadow text


def shadow_report(
    engine: Engine,
    *,
    since: Since | None = None,
    until: Since | None = None,
    examples: int = 5,
) -> ShadowReport:
    """Count live-versus-shadow decisions of the records in ``[since, until)``."""
    c = audit_log.c
    column = readable(engine, ["shadow"])[0]
    if column is not c.shadow:
        return ShadowReport(0, 0, 0, 0, 0, (), (), {}, has_column=False)
    where: list[ColumnElement[bool]] = [c.shadow.is_not(None)]
    where += AuditFilter(since=since, until=until).clauses()
    groups: list[tuple[_Group, int]] = []
    stmt = (
        select(c.approval, c.risk_level, c.matched_rule, c.shadow, func.count())
        .where(and_(*where))
        .group_by(c.approval, c.risk_level, c.matched_rule, c.shadow)
    )
    with engine.connect() as conn:
        for approval, risk, rule, text, n in conn.execute(stmt):
            groups.append(((approval, risk, rule, text), int(n)))
        return _classify(conn, groups, where, examples)


def _classify(
    conn: Any, groups: list[tuple[_Group, int]], where: list[Any], examples: int
) -> ShadowReport:
    records = unchanged = risk_only = errors = 0
    changes: dict[tuple[str, str, str | None, str | None], list[Any]] = {}
    unknown: dict[tuple[str, str, str | None, str | None], set[str]] = {}
    failures: dict[str, list[Any]] = {}
    policies: dict[str, int] = {}
    for (approval, risk, rule, text), n in groups:
        records += n
        verdict = _parse(text)
        if "error" in verdict or "approval" not in verdict:
            errors += n
            message = str(verdict.get("error", "shadow error: unreadable"))
            entry = failures.setdefault(message, [0, []])
            entry[0] += n
            entry[1].append(text)
            continue
        fingerprint = verdict.get("policy")
        if isinstance(fingerprint, str):
            policies[fingerprint] = policies.get(fingerprint, 0) + n
        live = approval or "none"
        if verdict["approval"] != live:
            key = (live, str(verdict["approval"]), rule, verdict.get("matched_rule"))
            entry = changes.setdefault(key, [0, []])
            entry[0] += n
            entry[1].append((approval, rule, text))
            names = verdict.get("unknown")
            if isinstance(names, list):
                unknown.setdefault(key, set()).update(str(u) for u in names)
        elif verdict.get("risk_level") != risk:
            risk_only += n
        else:
            unchanged += n
    changed = sum(v[0] for v in changes.values())
    ordered = sorted(changes.items(), key=lambda kv: (-kv[1][0], repr(kv[0])))
    out = tuple(
        ShadowChange(
            *key,
            count,
            _examples(conn, where, members, examples),
            tuple(sorted(unknown.get(key, ()))),
        )
        for key, (count, members) in ordered
    )
    kinds = tuple(
        ShadowErrors(message, count, _example_ids(conn, where, texts, examples))
        for message, (count, texts) in sorted(failures.items(), key=lambda kv: -kv[1][0])[:10]
    )
    return ShadowReport(records, unchanged, risk_only, changed, errors, out, kinds, policies)


def _parse(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"error": "shadow error: unreadable shadow record"}
    return value if isinstance(value, dict) else {"error": "shadow error: unreadable"}


def _examples(
    conn: Any,
    where: list[Any],
    members: Iterable[tuple[str | None, str | None, str]],
    limit: int,
) -> tuple[ShadowExample, ...]:
    if limit <= 0:
        return ()
    c = audit_log.c
    found: list[Any] = []
    for approval, rule, text in members:
        match = [
            c.shadow == text,
            c.approval.is_(None) if approval is None else c.approval == approval,
            c.matched_rule.is_(None) if rule is None else c.matched_rule == rule,
        ]
        stmt = (
            select(
                c.id,
                c.created_at,
                c.action_type,
                c.target,
                c.agent_id,
                c.approval,
                c.risk_level,
                c.matched_rule,
                c.decision,
                c.shadow,
            )
            .where(and_(*where, *match))
            .order_by(c.id.desc())
            .limit(limit)
        )
        found += conn.execute(stmt).all()
    found.sort(key=lambda row: -int(row[0]))
    return tuple(
        ShadowExample(
            int(row[0]),
            str(row[1]),
            row[2],
            row[3],
            row[4],
            {
                "approval": row[5],
                "risk_level": row[6],
                "matched_rule": row[7],
                "decision": row[8],
            },
            _parse(row[9]),
        )
        for row in found[:limit]
    )


def _example_ids(conn: Any, where: list[Any], texts: list[str], limit: int) -> tuple[int, ...]:
    if limit <= 0:
        return ()
    c = audit_log.c
    stmt = (
        select(c.id)
        .where(and_(*where, c.shadow.in_(texts[:100])))
        .order_by(c.id.desc())
        .limit(limit)
    )
    return tuple(int(i) for i in conn.execute(stmt).scalars())
