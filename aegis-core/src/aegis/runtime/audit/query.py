"""Reading the trail: filters for ``aegis audit``, per-rule stats, and chain verification.

Everything here is synchronous and uses ordinary SQLAlchemy connections from the store's engine,
separate from the writer's connection; in WAL mode readers never block the writer, so the CLI can
query (or ``--tail``) a trail that another process is writing.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import attrs
from sqlalchemy import Connection, Engine, Select, and_, false, func, select, union_all
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ColumnElement

from aegis.core.result import ResultStatus
from aegis.core.risk import RiskLevel
from aegis.runtime.audit.chain import VerifyReport
from aegis.runtime.audit.migrate import readable
from aegis.runtime.audit.record import AuditRecord
from aegis.runtime.audit.schema import audit_log, record_source, with_side_params

Order = Literal["asc", "desc"]
Since = dt.datetime | dt.date | dt.timedelta | str
#: Record ids are 64-bit on every dialect (SQLite INTEGER, PostgreSQL BIGINT); an id or limit
#: past that range is answered here, never sent to the driver (which raises OverflowError).
ID_MIN, ID_MAX = -(2**63), 2**63 - 1


@attrs.frozen
class AuditFilter:
    """The filters shared by ``query``, ``count`` and ``stats``. ``None`` means "any"."""

    session: str | None = None
    action_type: str | None = None
    risk_level: str | RiskLevel | Sequence[str | RiskLevel] | None = None
    result: str | ResultStatus | Sequence[str | ResultStatus] | None = None
    agent: str | None = None
    decision: str | Sequence[str] | None = None
    matched_rule: str | None = None
    since: Since | None = None
    until: Since | None = None
    after_id: int | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        c = audit_log.c
        out: list[ColumnElement[bool]] = []
        if self.session is not None:
            out.append(c.session_id == self.session)
        if self.agent is not None:
            out.append(c.agent_id == self.agent)
        if self.action_type is not None:
            out.append(c.action_type.ilike(_glob_to_like(self.action_type), escape="\\"))
        if self.risk_level is not None:
            out.append(c.risk_level.in_([RiskLevel.parse(r).name for r in _many(self.risk_level)]))
        if self.result is not None:
            out.append(c.result.in_([_result_name(r) for r in _many(self.result)]))
        if self.decision is not None:
            out.append(c.decision.in_([str(d).lower() for d in _many(self.decision)]))
        if self.matched_rule is not None:
            out.append(c.matched_rule == self.matched_rule)
        if self.since is not None:
            out.append(c.created_at >= _timestamp(self.since))
        if self.until is not None:
            out.append(c.created_at < _timestamp(self.until))
        if self.after_id is not None:
            after = _whole(self.after_id, "after_id")
            if after >= ID_MAX:
                out.append(false())  # no id lies above the largest one
            elif after >= ID_MIN:
                out.append(c.id > after)
            # below the smallest id: every record follows, no clause
        return out


def _whole(value: object, name: str) -> int:
    """An int (not a bool, a float or a numeric string): ids are never rounded or parsed here."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    return value


def _checked_limit(limit: int | None) -> int | None:
    """The limit to send to the database: None for none, or for one past every possible id."""
    if limit is None:
        return None
    if _whole(limit, "limit") < 0:
        raise ValueError(f"limit must be 0 or more (or None for every record), not {limit}")
    # A larger limit is no limit: a table cannot hold more rows than it has ids.
    return limit if limit <= ID_MAX else None


def _many(value: Any) -> Iterable[Any]:
    if isinstance(value, str | RiskLevel | ResultStatus):
        return [value]
    return list(value)


def _result_name(value: str | ResultStatus) -> str:
    if isinstance(value, ResultStatus):
        return value.value
    return str(value).strip().lower()


def _glob_to_like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _timestamp(value: Since) -> str:
    """Any accepted ``since`` form as the stored text format (UTC ISO-8601, microseconds)."""
    if isinstance(value, dt.timedelta):
        try:
            moment = dt.datetime.now(dt.UTC) - value
        except OverflowError:  # further back (or on) than any date: the first or the last one
            moment = (dt.datetime.min if value > dt.timedelta(0) else dt.datetime.max).replace(
                tzinfo=dt.UTC
            )
    elif isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    else:
        moment = dt.datetime.fromisoformat(value.strip())
    if moment.tzinfo is None:
        moment = moment.astimezone()  # naive means local time, as a user typing a date means
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def query(
    engine: Engine, flt: AuditFilter, *, limit: int | None = 100, order: Order = "asc"
) -> list[AuditRecord]:
    # A store written before the later columns existed stays readable without migrating.
    names = (c for c in audit_log.c if c.name != "owner")
    stmt = select(*with_side_params(readable(engine, names))).select_from(record_source())
    clauses = flt.clauses()
    if clauses:
        stmt = stmt.where(and_(*clauses))
    if order not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', not {order!r}")
    by_id = audit_log.c.id.asc() if order == "asc" else audit_log.c.id.desc()
    limit = _checked_limit(limit)
    with engine.connect() as conn:
        types = _types_matching(conn, flt.action_type) if flt.action_type is not None else None
        if types is not None and limit is not None:
            if not types:
                return []
            stmt = _by_type(stmt, types, by_id, int(limit))
        else:
            stmt = stmt.order_by(by_id)
            if limit is not None:
                stmt = stmt.limit(int(limit))
        return [AuditRecord.from_mapping(row) for row in conn.execute(stmt).mappings()]


#: More distinct action types than this in a store, and a type glob is left to a plain scan.
TYPE_SKIP_MAX = 1000


def _types_matching(conn: Connection, pattern: str) -> list[str] | None:
    """The distinct ``lower(action_type)`` values that may match ``pattern``, found by seeking
    through ``ix_aegis_audit_type`` (one seek per distinct type, never a scan of the rows);
    None when there are too many to be worth it.

    The glob is checked here only to leave values out that cannot match; the query keeps its
    own ``ilike`` condition, so what matches is decided by the database as before.
    """
    key = func.lower(audit_log.c.action_type)
    seek = select(key).order_by(key).limit(1)
    maybe = re.compile(
        ".*".join(".".join(re.escape(q) for q in part.split("?")) for part in pattern.split("*")),
        re.IGNORECASE | re.DOTALL,
    )
    found: list[str] = []
    value = conn.execute(seek).scalar()
    for _ in range(TYPE_SKIP_MAX):
        if value is None:
            return found
        if maybe.fullmatch(value):
            found.append(value)
        value = conn.execute(seek.where(key > value)).scalar()
    return None


def _by_type(stmt: Select[Any], types: list[str], by_id: Any, limit: int) -> Select[Any]:
    """The newest (or oldest) ``limit`` rows of each type, from the index in id order, merged:
    no sort of every matching row, however many there are."""
    key = func.lower(audit_log.c.action_type)
    parts = [stmt.where(key == t).order_by(by_id).limit(limit).subquery() for t in types]
    merged = union_all(*(select(p) for p in parts)).subquery()
    order = merged.c.id.asc() if by_id.modifier is operators.asc_op else merged.c.id.desc()
    return select(merged).order_by(order).limit(limit)


def count(engine: Engine, flt: AuditFilter) -> int:
    stmt = select(func.count()).select_from(audit_log)
    clauses = flt.clauses()
    if clauses:
        stmt = stmt.where(and_(*clauses))
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def session_ids(engine: Engine, prefix: str, *, limit: int | None = None) -> list[str]:
    """Distinct session ids starting with ``prefix`` (case-sensitive on every dialect), sorted."""
    c = audit_log.c
    stmt = select(c.session_id).distinct().where(c.session_id.is_not(None))
    if prefix:
        # substr, not LIKE: SQLite's LIKE ignores case and would need the wildcards escaped.
        stmt = stmt.where(func.substr(c.session_id, 1, len(prefix)) == prefix)
    stmt = stmt.order_by(c.session_id)
    limit = _checked_limit(limit)
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        return [str(value) for value in conn.execute(stmt).scalars()]


@attrs.frozen
class RuleStats:
    """How often one rule decided, and how those actions ended."""

    rule: str | None
    total: int
    by_result: dict[str, int]
    by_decision: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def stats(engine: Engine, flt: AuditFilter) -> list[RuleStats]:
    """Per matched rule (``None`` = the policy defaults or no policy), busiest first."""
    c = audit_log.c
    clauses = flt.clauses()
    where = and_(*clauses) if clauses else None
    by_result: dict[str | None, dict[str, int]] = {}
    by_decision: dict[str | None, dict[str, int]] = {}
    with engine.connect() as conn:
        for column, target in ((c.result, by_result), (c.decision, by_decision)):
            stmt = select(c.matched_rule, column, func.count()).group_by(c.matched_rule, column)
            if where is not None:
                stmt = stmt.where(where)
            for rule, key, n in conn.execute(stmt):
                target.setdefault(rule, {})[key] = int(n)
    out = [
        RuleStats(
            rule=rule,
            total=sum(results.values()),
            by_result=dict(sorted(results.items())),
            by_decision=dict(sorted(by_decision.get(rule, {}).items())),
        )
        for rule, results in by_result.items()
    ]
    out.sort(key=lambda s: (-s.total, s.rule or ""))
    return out


def verify(engine: Engine, *, chunk: int = 5000) -> VerifyReport:
    """Check the whole chain inside one read snapshot (concurrent writers are not "inserts");
    on SQLite, ranges of a large trail in a process per core (``audit.verify``)."""
    from aegis.runtime.audit import verify as audit_verify

    return audit_verify.verify(engine, chunk=chunk)
